using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>
/// Raw OCI distribution requests against a Berth under test (for what no client would send, and for
/// checking headers), plus what the registry keeps on disk under DATA/registry.
/// </summary>
public sealed class RegistryClient(BerthServer server) : IDisposable
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciConfig = "application/vnd.oci.image.config.v1+json";
    public const string OciLayer = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string OciEmpty = "application/vnd.oci.empty.v1+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";

    public HttpClient Http { get; } = new() { BaseAddress = new Uri(server.Endpoint), Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>host:port as docker and skopeo name images of this registry.</summary>
    public string Host => $"127.0.0.1:{server.Port}";

    public string BlobsDirectory => Path.Combine(server.DataDirectory, "registry", "blobs");
    public string UploadsDirectory => Path.Combine(server.DataDirectory, "registry", "uploads");

    public static string Sha256(byte[] data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>Sends one request; <paramref name="contentType"/> applies only with a body.</summary>
    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, byte[]? body = null, string? contentType = null, params (string Name, string Value)[] headers)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            req.Content = new ByteArrayContent(body);
            if (contentType is not null)
            {
                req.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }
        }
        foreach (var (name, value) in headers)
        {
            if (!req.Headers.TryAddWithoutValidation(name, value))
            {
                req.Content ??= new ByteArrayContent([]);
                req.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }
        return await Http.SendAsync(req);
    }

    /// <summary>errors[0].code of an error response (null when the body is not the spec's error JSON).</summary>
    public static async Task<string?> ErrorCodeAsync(HttpResponseMessage r)
    {
        var text = await r.Content.ReadAsStringAsync();
        try
        {
            return JsonNode.Parse(text)?["errors"]?[0]?["code"]?.GetValue<string>();
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    public static string Header(HttpResponseMessage r, string name)
        => r.Headers.TryGetValues(name, out var v) ? string.Join(", ", v)
            : r.Content.Headers.TryGetValues(name, out var c) ? string.Join(", ", c) : "";

    /// <summary>POST to start an upload; returns the upload path from Location.</summary>
    public async Task<string> StartUploadAsync(string repo)
    {
        using var r = await SendAsync(HttpMethod.Post, $"/v2/{repo}/blobs/uploads/");
        Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        return r.Headers.Location!.OriginalString;
    }

    /// <summary>POST then PUT with the whole blob; returns its digest.</summary>
    public async Task<string> PushBlobAsync(string repo, byte[] data)
    {
        var digest = Sha256(data);
        var location = await StartUploadAsync(repo);
        using var r = await SendAsync(HttpMethod.Put, $"{location}?digest={digest}", data, "application/octet-stream");
        Assert.True(r.StatusCode == HttpStatusCode.Created, $"blob PUT: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        Assert.Equal(digest, Header(r, "Docker-Content-Digest"));
        return digest;
    }

    public async Task<HttpResponseMessage> PutManifestAsync(string repo, string reference, byte[] manifest, string mediaType)
        => await SendAsync(HttpMethod.Put, $"/v2/{repo}/manifests/{reference}", manifest, mediaType);

    /// <summary>A one-layer OCI image (config + layer pushed first); returns the manifest's digest and bytes.</summary>
    public async Task<(string Digest, byte[] Bytes)> PushImageAsync(string repo, string tag, string seed, string? extraManifestFields = null)
    {
        var config = Utf8($$"""{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},"seed":"{{seed}}"}""");
        var layer = Utf8("layer of " + seed);
        var configDigest = await PushBlobAsync(repo, config);
        var layerDigest = await PushBlobAsync(repo, layer);
        var manifest = Utf8($$"""
            {"schemaVersion":2,"mediaType":"{{OciManifest}}",
             "config":{"mediaType":"{{OciConfig}}","digest":"{{configDigest}}","size":{{config.Length}}},
             "layers":[{"mediaType":"{{OciLayer}}","digest":"{{layerDigest}}","size":{{layer.Length}}}]{{extraManifestFields}}}
            """);
        using var r = await PutManifestAsync(repo, tag, manifest, OciManifest);
        Assert.True(r.StatusCode == HttpStatusCode.Created, $"manifest PUT: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        return (Sha256(manifest), manifest);
    }

    public async Task<List<string>> CatalogAsync()
    {
        var json = JsonNode.Parse(await Http.GetStringAsync("/v2/_catalog"))!;
        return json["repositories"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
    }

    /// <summary>The repository's tags, or null when the repository is unknown (404).</summary>
    public async Task<List<string>?> TagsAsync(string repo)
    {
        using var r = await Http.GetAsync($"/v2/{repo}/tags/list");
        if (r.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var json = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        return json["tags"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
    }

    public async Task<HttpResponseMessage> GetManifestAsync(string repo, string reference, params string[] accept)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"/v2/{repo}/manifests/{reference}");
        foreach (var a in accept.Length > 0 ? accept : [OciManifest, OciIndex, DockerManifest, "application/vnd.docker.distribution.manifest.list.v2+json"])
        {
            req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(a));
        }
        return await Http.SendAsync(req);
    }

    /// <summary>Every file under DATA/registry/blobs, as "sha256:hex" (from its path).</summary>
    public SortedSet<string> BlobFiles()
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        if (!Directory.Exists(BlobsDirectory))
        {
            return set;
        }
        foreach (var file in Directory.EnumerateFiles(BlobsDirectory, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(BlobsDirectory, file).Split(Path.DirectorySeparatorChar);
            set.Add(rel.Length == 3 ? rel[0] + ":" + rel[2] : "?" + string.Join('/', rel));
        }
        return set;
    }

    /// <summary>Every blob file holds exactly the bytes its name says (no half-written blob anywhere).</summary>
    public void AssertBlobsHashToTheirNames()
    {
        foreach (var file in Directory.EnumerateFiles(BlobsDirectory, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(BlobsDirectory, file).Split(Path.DirectorySeparatorChar);
            Assert.True(rel.Length == 3 && rel[0] == "sha256" && rel[2].StartsWith(rel[1], StringComparison.Ordinal), "unexpected file under blobs/: " + file);
            using var fs = File.OpenRead(file);
            Assert.Equal(rel[2], Convert.ToHexStringLower(SHA256.HashData(fs)));
        }
    }

    public string[] UploadFiles() => Directory.Exists(UploadsDirectory) ? Directory.GetFiles(UploadsDirectory, "*", SearchOption.AllDirectories) : [];

    public void Dispose() => Http.Dispose();
}
