using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>Blob Range requests and HEAD, tags/list and _catalog pagination with n, last and the Link header.</summary>
public sealed partial class BlobRangeAndPagingTests : RegistryServerTest
{

    protected override Task RequireToolsAsync() => Task.CompletedTask;

    private static byte[] Bytes(int n)
    {
        var data = new byte[n];
        new Random(42).NextBytes(data);
        return data;
    }

    [Theory]
    [InlineData("bytes=0-99", 0, 100)]
    [InlineData("bytes=100-199", 100, 100)]
    [InlineData("bytes=900-", 900, 100)]
    [InlineData("bytes=-10", 990, 10)]
    [InlineData("bytes=990-5000", 990, 10)]
    [InlineData("bytes=0-0", 0, 1)]
    [InlineData("bytes=999-999", 999, 1)]
    [InlineData("bytes=-5000", 0, 1000)]
    public async Task BlobRange_206WithContentRangeAndExactlyThoseBytes(string range, int offset, int length)
    {
        var data = Bytes(1000);
        var digest = await RegistryApi.PushBlobAsync("ranges/blob", data);
        using var r = await RegistryApi.SendAsync(HttpMethod.Get, $"/v2/ranges/blob/blobs/{digest}", null, null, ("Range", range));
        Assert.Equal(HttpStatusCode.PartialContent, r.StatusCode);
        Assert.Equal($"bytes {offset}-{offset + length - 1}/1000", RegistryClient.Header(r, "Content-Range"));
        Assert.Equal(length, r.Content.Headers.ContentLength);
        Assert.Equal(data[offset..(offset + length)], await r.Content.ReadAsByteArrayAsync());
        Assert.Equal(digest, RegistryClient.Header(r, "Docker-Content-Digest"));
    }

    [Fact]
    public async Task BlobRange_Unsatisfiable_416WithContentRangeOfTheSize_AndOtherUnitsAreIgnored()
    {
        var data = Bytes(1000);
        var digest = await RegistryApi.PushBlobAsync("ranges/blob", data);
        foreach (var range in new[] { "bytes=1000-", "bytes=5000-6000", "bytes=-0" })
        {
            using var r = await RegistryApi.SendAsync(HttpMethod.Get, $"/v2/ranges/blob/blobs/{digest}", null, null, ("Range", range));
            Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, r.StatusCode);
            Assert.Equal("bytes */1000", RegistryClient.Header(r, "Content-Range"));
        }
        // RFC 9110: a range unit the server does not know is ignored, and the whole blob is served.
        using var items = await RegistryApi.SendAsync(HttpMethod.Get, $"/v2/ranges/blob/blobs/{digest}", null, null, ("Range", "items=0-1"));
        Assert.Equal(HttpStatusCode.OK, items.StatusCode);
        Assert.Equal(data, await items.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Head_BlobAndManifest_ContentLengthDigestAndNoBody()
    {
        var data = Bytes(1000);
        var digest = await RegistryApi.PushBlobAsync("heads/app", data);
        using var blob = await RegistryApi.SendAsync(HttpMethod.Head, $"/v2/heads/app/blobs/{digest}");
        Assert.Equal(HttpStatusCode.OK, blob.StatusCode);
        Assert.Equal(1000, blob.Content.Headers.ContentLength);
        Assert.Equal(digest, RegistryClient.Header(blob, "Docker-Content-Digest"));
        Assert.Equal("bytes", RegistryClient.Header(blob, "Accept-Ranges"));
        Assert.Empty(await blob.Content.ReadAsByteArrayAsync());

        var (manifest, bytes) = await RegistryApi.PushImageAsync("heads/app", "1", "head");
        foreach (var reference in new[] { "1", manifest })
        {
            using var head = await RegistryApi.SendAsync(HttpMethod.Head, $"/v2/heads/app/manifests/{reference}", null, null, ("Accept", RegistryClient.OciManifest));
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(bytes.Length, head.Content.Headers.ContentLength);
            Assert.Equal(manifest, RegistryClient.Header(head, "Docker-Content-Digest"));
            Assert.Equal(RegistryClient.OciManifest, head.Content.Headers.ContentType!.MediaType);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }

        using var missing = await RegistryApi.SendAsync(HttpMethod.Head, $"/v2/heads/app/blobs/{RegistryClient.Sha256(RegistryClient.Utf8("nope"))}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var missingManifest = await RegistryApi.SendAsync(HttpMethod.Head, "/v2/heads/app/manifests/nope");
        Assert.Equal(HttpStatusCode.NotFound, missingManifest.StatusCode);
    }

    /// <summary>Follows rel="next" Links from <paramref name="first"/>; returns every item and how many pages it took.</summary>
    private async Task<(List<string> Items, int Pages)> FollowAsync(string first, string field, int n)
    {
        var items = new List<string>();
        var pages = 0;
        string? next = first;
        while (next is not null)
        {
            using var r = await RegistryApi.SendAsync(HttpMethod.Get, next);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            var page = JsonNode.Parse(await r.Content.ReadAsStringAsync())![field]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
            Assert.True(page.Count <= n, $"page of {page.Count} > n={n}");
            items.AddRange(page);
            pages++;
            var link = RegistryClient.Header(r, "Link");
            if (link.Length == 0)
            {
                next = null;
                continue;
            }
            Assert.Equal(n, page.Count);
            var m = LinkPattern().Match(link);
            Assert.True(m.Success, "Link header: " + link);
            next = m.Groups[1].Value;
            Assert.Contains($"n={n}", next, StringComparison.Ordinal);
            Assert.Contains("last=" + Uri.EscapeDataString(page[^1]), next, StringComparison.Ordinal);
            Assert.True(pages < 100, "pagination does not end");
        }
        return (items, pages);
    }

    [GeneratedRegex("^<([^>]+)>;\\s*rel=\"next\"$")]
    private static partial Regex LinkPattern();

    [Fact]
    public async Task TagsList_PaginatesWithNLastAndLink()
    {
        var (manifest, bytes) = await RegistryApi.PushImageAsync("paged/app", "latest", "paged");
        string[] tags = ["1.0", "1.1", "2.0", "A", "B_", "latest", "v1", "v2", "v3"];
        foreach (var t in tags.Where(t => t != "latest"))
        {
            using var put = await RegistryApi.PutManifestAsync("paged/app", t, bytes, RegistryClient.OciManifest);
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
            Assert.Equal(manifest, RegistryClient.Header(put, "Docker-Content-Digest"));
        }
        var sorted = tags.Order(StringComparer.Ordinal).ToList();

        Assert.Equal(sorted, await RegistryApi.TagsAsync("paged/app"));
        var (all, pages) = await FollowAsync("/v2/paged/app/tags/list?n=2", "tags", 2);
        Assert.Equal(sorted, all);
        Assert.Equal(5, pages);
        (all, pages) = await FollowAsync("/v2/paged/app/tags/list?n=3", "tags", 3);
        Assert.Equal(sorted, all);
        Assert.Equal(3, pages);

        // n=0: an empty list and no Link; last alone: everything after it; n larger than the list: all, no Link.
        using (var zero = await RegistryApi.SendAsync(HttpMethod.Get, "/v2/paged/app/tags/list?n=0"))
        {
            Assert.Equal(HttpStatusCode.OK, zero.StatusCode);
            Assert.Empty(JsonNode.Parse(await zero.Content.ReadAsStringAsync())!["tags"]!.AsArray());
            Assert.Equal("", RegistryClient.Header(zero, "Link"));
        }
        (all, _) = await FollowAsync("/v2/paged/app/tags/list?last=B_", "tags", 100);
        Assert.Equal(sorted.SkipWhile(t => t != "B_").Skip(1).ToList(), all);
        (all, pages) = await FollowAsync("/v2/paged/app/tags/list?n=100", "tags", 100);
        Assert.Equal(sorted, all);
        Assert.Equal(1, pages);
        (all, pages) = await FollowAsync("/v2/paged/app/tags/list?n=2&last=v1", "tags", 2);
        Assert.Equal(["v2", "v3"], all);
        Assert.Equal(1, pages);
    }

    [Fact]
    public async Task Catalog_PaginatesWithNLastAndLink()
    {
        string[] repos = ["cat/a", "cat/b", "cat/c/d", "cat/c-e", "cat/z", "zz"];
        foreach (var r in repos)
        {
            await RegistryApi.PushImageAsync(r, "1", r);
        }
        var catalog = await RegistryApi.CatalogAsync();
        var mine = repos.Order(StringComparer.Ordinal).ToList();
        Assert.Equal(mine, catalog.Where(repos.Contains).ToList());
        Assert.Equal(catalog.Order(StringComparer.Ordinal).ToList(), catalog);

        var (all, pages) = await FollowAsync("/v2/_catalog?n=2", "repositories", 2);
        Assert.Equal(catalog, all);
        Assert.Equal((catalog.Count + 1) / 2, pages);
        (all, _) = await FollowAsync("/v2/_catalog?n=4&last=cat/b", "repositories", 4);
        Assert.Equal(catalog.Where(r => string.CompareOrdinal(r, "cat/b") > 0).ToList(), all);
    }
}
