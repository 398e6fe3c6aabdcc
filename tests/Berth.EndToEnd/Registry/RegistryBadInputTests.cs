using System.Net;
using System.Text;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>One berth for the whole table, with a small known state every case must leave exactly as it was.</summary>
public sealed class RegistryBadInputFixture : IAsyncLifetime
{
    public BerthServer? Server { get; private set; }
    public RegistryClient Registry { get; private set; } = null!;
    public string Image { get; private set; } = "";
    public byte[] ImageBytes { get; private set; } = [];
    public string Config { get; private set; } = "";
    public int ConfigSize { get; private set; }
    public string Layer { get; private set; } = "";
    public int LayerSize { get; private set; }
    public byte[] Known { get; } = Data(1000, 1);
    public string KnownDigest { get; private set; } = "";
    public string OtherOnly { get; private set; } = "";
    public int OtherOnlySize => "only in other/app".Length;

    public static byte[] Data(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    public async ValueTask InitializeAsync()
    {
        Server = await BerthServer.StartAsync("server");
        Registry = new RegistryClient(Server);
        (Image, ImageBytes) = await Registry.PushImageAsync("team/app", "1", "baseline");
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(ImageBytes)!;
        Config = manifest["config"]!["digest"]!.GetValue<string>();
        ConfigSize = manifest["config"]!["size"]!.GetValue<int>();
        Layer = manifest["layers"]![0]!["digest"]!.GetValue<string>();
        LayerSize = manifest["layers"]![0]!["size"]!.GetValue<int>();
        KnownDigest = await Registry.PushBlobAsync("team/app", Known);
        OtherOnly = await Registry.PushBlobAsync("other/app", RegistryClient.Utf8("only in other/app"));
    }

    public async ValueTask DisposeAsync()
    {
        Registry?.Dispose();
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}

/// <summary>
/// Bad input against /v2/, as a table: each case's status and errors[0].code as the OCI distribution spec
/// has them, and afterwards nothing partial stored (catalog, tags, blob files and the case's own digests unchanged).
/// </summary>
public sealed class RegistryBadInputTests(RegistryBadInputFixture fixture) : IClassFixture<RegistryBadInputFixture>
{
    private const string Octet = "application/octet-stream";

    /// <summary>A case: what to send (several requests when it needs a session first), what must come back, and digests that must stay unknown.</summary>
    public sealed record Case(string Name, int Status, string? Code, Func<Ctx, Task<HttpResponseMessage>> Send, Func<Ctx, IEnumerable<(string Repo, string Digest)>>? Unknown = null);

    public sealed class Ctx(RegistryBadInputFixture f)
    {
        public RegistryBadInputFixture F => f;
        public RegistryClient R => f.Registry;

        public Task<HttpResponseMessage> Send(HttpMethod method, string path, byte[]? body = null, string? contentType = null, params (string, string)[] headers)
            => R.SendAsync(method, path, body, contentType, headers);

        public Task<HttpResponseMessage> Put(string path, byte[]? body = null, string? contentType = Octet, params (string, string)[] headers)
            => Send(HttpMethod.Put, path, body, contentType, headers);

        public Task<HttpResponseMessage> Patch(string path, byte[] body, string? range)
            => range is null ? Send(HttpMethod.Patch, path, body, Octet) : Send(HttpMethod.Patch, path, body, Octet, ("Content-Range", range));

        /// <summary>A chunk that must be accepted.</summary>
        public async Task PatchOk(string location, byte[] body, string range)
        {
            using var r = await Patch(location, body, range);
            Assert.True(r.StatusCode == HttpStatusCode.Accepted, $"PATCH {range}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
            Assert.Equal("0-" + range.Split('-')[1], RegistryClient.Header(r, "Range"));
        }

        public Task<string> Start(string repo = "team/app") => R.StartUploadAsync(repo);

        /// <summary>The upload is gone: its URL answers 404 BLOB_UPLOAD_UNKNOWN.</summary>
        public async Task AssertUploadGone(string location)
        {
            using var r = await Send(HttpMethod.Get, location);
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            Assert.Equal("BLOB_UPLOAD_UNKNOWN", await RegistryClient.ErrorCodeAsync(r));
        }

        public async Task Cancel(string location)
        {
            using var r = await Send(HttpMethod.Delete, location);
            Assert.Equal(HttpStatusCode.NoContent, r.StatusCode);
        }

        public static string Manifest(string config, long configSize, string layer, long layerSize, string mediaType = RegistryClient.OciManifest, string configType = RegistryClient.OciConfig)
            => $$"""
               {"schemaVersion":2,"mediaType":"{{mediaType}}",
                "config":{"mediaType":"{{configType}}","digest":"{{config}}","size":{{configSize}}},
                "layers":[{"mediaType":"{{RegistryClient.OciLayer}}","digest":"{{layer}}","size":{{layerSize}}}]}
               """;

        public string Valid(string layer, long layerSize) => Manifest(F.Config, F.ConfigSize, layer, layerSize);

        /// <summary>A valid manifest of the known blobs that is not stored yet (its annotation makes it new).</summary>
        public string Fresh(string note) => Valid(F.Layer, F.LayerSize).TrimEnd().TrimEnd('}') + $$$""","annotations":{"case":"{{{note}}}"}}""";
    }

    private static readonly byte[] Twenty = RegistryBadInputFixture.Data(20, 2);
    private static readonly byte[] Hundred = RegistryBadInputFixture.Data(100, 3);
    private static readonly string Missing = RegistryClient.Sha256(RegistryClient.Utf8("never uploaded"));
    private static byte[] U(string s) => RegistryClient.Utf8(s);
    private static (string, string) Probe(string repo, byte[] content) => (repo, RegistryClient.Sha256(content));
    private static (string, string) Probe(string repo, string content) => (repo, RegistryClient.Sha256(U(content)));

    public static readonly Case[] Cases =
    [
        // ---- digests ----
        new("blob GET, md5 algorithm", 400, "DIGEST_INVALID", c => c.Send(HttpMethod.Get, "/v2/team/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e")),
        new("blob GET, sha256 of 63 hex digits", 400, "DIGEST_INVALID", c => c.Send(HttpMethod.Get, "/v2/team/app/blobs/" + c.F.KnownDigest[..^1])),
        new("blob GET, sha256 of 65 hex digits", 400, "DIGEST_INVALID", c => c.Send(HttpMethod.Get, "/v2/team/app/blobs/" + c.F.KnownDigest + "0")),
        new("blob GET, uppercase hex", 400, "DIGEST_INVALID", c => c.Send(HttpMethod.Get, "/v2/team/app/blobs/sha256:" + c.F.KnownDigest[7..].ToUpperInvariant())),
        new("blob HEAD, no algorithm", 400, null, c => c.Send(HttpMethod.Head, "/v2/team/app/blobs/" + c.F.KnownDigest[7..])),
        new("monolithic POST, digest does not match the body", 400, "DIGEST_INVALID",
            c => c.Send(HttpMethod.Post, $"/v2/team/app/blobs/uploads/?digest={RegistryClient.Sha256(Twenty)}", Hundred, Octet),
            _ => [Probe("team/app", Hundred), Probe("team/app", Twenty)]),
        new("monolithic POST into a new repository, digest mismatch", 400, "DIGEST_INVALID",
            c => c.Send(HttpMethod.Post, $"/v2/brand/new/blobs/uploads/?digest={RegistryClient.Sha256(Twenty)}", Hundred, Octet),
            _ => [Probe("brand/new", Hundred)]),
        new("monolithic POST, malformed digest", 400, "DIGEST_INVALID",
            c => c.Send(HttpMethod.Post, "/v2/team/app/blobs/uploads/?digest=sha256:xyz", Hundred, Octet), _ => [Probe("team/app", Hundred)]),
        new("monolithic POST, sha384 is not supported", 400, "DIGEST_INVALID",
            c => c.Send(HttpMethod.Post, "/v2/team/app/blobs/uploads/?digest=sha384:" + new string('a', 96), Hundred, Octet), _ => [Probe("team/app", Hundred)]),
        new("POST then PUT, digest mismatch", 400, "DIGEST_INVALID", async c =>
        {
            var loc = await c.Start();
            var r = await c.Put($"{loc}?digest={RegistryClient.Sha256(Twenty)}", Hundred);
            await c.AssertUploadGone(loc);
            return r;
        }, _ => [Probe("team/app", Hundred)]),
        new("chunked upload, digest mismatch at the closing PUT", 400, "DIGEST_INVALID", async c =>
        {
            var loc = await c.Start();
            await c.PatchOk(loc, Hundred[..50], "0-49");
            await c.PatchOk(loc, Hundred[50..], "50-99");
            var r = await c.Put($"{loc}?digest={RegistryClient.Sha256(Twenty)}");
            await c.AssertUploadGone(loc);
            return r;
        }, _ => [Probe("team/app", Hundred)]),
        new("truncated upload: PUT with the digest of more bytes than sent", 400, "DIGEST_INVALID", async c =>
        {
            var loc = await c.Start();
            return await c.Put($"{loc}?digest={RegistryClient.Sha256(Hundred)}", Hundred[..60]);
        }, _ => [Probe("team/app", Hundred), Probe("team/app", Hundred[..60])]),
        new("truncated chunked upload: closing PUT after half the bytes", 400, "DIGEST_INVALID", async c =>
        {
            var loc = await c.Start();
            await c.PatchOk(loc, Hundred[..50], "0-49");
            return await c.Put($"{loc}?digest={RegistryClient.Sha256(Hundred)}");
        }, _ => [Probe("team/app", Hundred)]),
        new("closing PUT without a digest", 400, "DIGEST_INVALID", async c =>
        {
            var loc = await c.Start();
            var r = await c.Put(loc, Hundred);
            await c.Cancel(loc);
            return r;
        }, _ => [Probe("team/app", Hundred)]),

        // ---- chunks ----
        new("out-of-order chunk: 416 with the Range received so far", 416, "BLOB_UPLOAD_INVALID", async c =>
        {
            var loc = await c.Start();
            await c.PatchOk(loc, Hundred[..10], "0-9");
            var r = await c.Patch(loc, Hundred[20..30], "20-29");
            Assert.Equal("0-9", RegistryClient.Header(r, "Range"));
            Assert.EndsWith(loc.Split('/')[^1], r.Headers.Location!.OriginalString, StringComparison.Ordinal);
            // The session survives: GET reports where it stands, and the right chunk still fits.
            using (var status = await c.Send(HttpMethod.Get, loc))
            {
                Assert.Equal(HttpStatusCode.NoContent, status.StatusCode);
                Assert.Equal("0-9", RegistryClient.Header(status, "Range"));
            }
            await c.PatchOk(loc, Hundred[10..20], "10-19");
            await c.Cancel(loc);
            return r;
        }, _ => [Probe("team/app", Hundred), Probe("team/app", Hundred[..20])]),
        new("first chunk not starting at 0", 416, "BLOB_UPLOAD_INVALID", async c =>
        {
            var loc = await c.Start();
            var r = await c.Patch(loc, Hundred[5..15], "5-14");
            await c.Cancel(loc);
            return r;
        }),
        new("final chunk out of order in the closing PUT", 416, "BLOB_UPLOAD_INVALID", async c =>
        {
            var loc = await c.Start();
            await c.PatchOk(loc, Hundred[..10], "0-9");
            var r = await c.Put($"{loc}?digest={RegistryClient.Sha256(Hundred[..30])}", Hundred[20..30], Octet, ("Content-Range", "20-29"));
            Assert.Equal("0-9", RegistryClient.Header(r, "Range"));
            await c.Cancel(loc);
            return r;
        }, _ => [Probe("team/app", Hundred[..30])]),
        new("malformed Content-Range", 400, "BLOB_UPLOAD_INVALID", async c =>
        {
            var loc = await c.Start();
            var r = await c.Patch(loc, Hundred[..10], "bytes=abc");
            await c.Cancel(loc);
            return r;
        }),
        new("Content-Range end before start", 400, "BLOB_UPLOAD_INVALID", async c =>
        {
            var loc = await c.Start();
            var r = await c.Patch(loc, Hundred[..10], "9-0");
            await c.Cancel(loc);
            return r;
        }),
        new("Content-Range longer than the chunk", 400, "BLOB_UPLOAD_INVALID", async c =>
        {
            var loc = await c.Start();
            var r = await c.Patch(loc, Hundred[..10], "0-99");
            await c.Cancel(loc);
            return r;
        }),
        new("PATCH to an unknown upload id", 404, "BLOB_UPLOAD_UNKNOWN", c => c.Patch($"/v2/team/app/blobs/uploads/{Guid.NewGuid()}", Hundred[..10], "0-9")),
        new("closing PUT to an unknown upload id", 404, "BLOB_UPLOAD_UNKNOWN",
            c => c.Put($"/v2/team/app/blobs/uploads/{Guid.NewGuid()}?digest={RegistryClient.Sha256(Hundred)}", Hundred), _ => [Probe("team/app", Hundred)]),
        new("upload id used under another repository", 404, "BLOB_UPLOAD_UNKNOWN", async c =>
        {
            var loc = await c.Start("team/app");
            var r = await c.Put($"/v2/other/app/blobs/uploads/{loc.Split('/')[^1]}?digest={RegistryClient.Sha256(Hundred)}", Hundred);
            await c.Cancel(loc);
            return r;
        }, _ => [Probe("other/app", Hundred), Probe("team/app", Hundred)]),
        new("abandoned upload into a new repository (cancelled)", 204, null, async c =>
        {
            var loc = await c.Start("brand/abandoned");
            await c.PatchOk(loc, Hundred[..10], "0-9");
            return await c.Send(HttpMethod.Delete, loc);
        }, _ => [Probe("brand/abandoned", Hundred[..10])]),
        new("PATCH after the upload was cancelled", 404, "BLOB_UPLOAD_UNKNOWN", async c =>
        {
            var loc = await c.Start();
            await c.Cancel(loc);
            return await c.Patch(loc, Hundred[..10], "0-9");
        }),

        // ---- manifests ----
        new("manifest names a missing layer", 400, "MANIFEST_BLOB_UNKNOWN",
            c => c.R.PutManifestAsync("team/app", "2", U(c.Valid(Missing, 14)), RegistryClient.OciManifest),
            c => [Probe("team/app", c.Valid(Missing, 14))]),
        new("manifest names a missing config", 400, "MANIFEST_BLOB_UNKNOWN",
            c => c.R.PutManifestAsync("team/app", "2", U(Ctx.Manifest(Missing, 14, c.F.Layer, c.F.LayerSize)), RegistryClient.OciManifest),
            c => [Probe("team/app", Ctx.Manifest(Missing, 14, c.F.Layer, c.F.LayerSize))]),
        new("manifest names a blob only another repository has", 400, "MANIFEST_BLOB_UNKNOWN",
            c => c.R.PutManifestAsync("team/app", "2", U(c.Valid(c.F.OtherOnly, c.F.OtherOnlySize)), RegistryClient.OciManifest),
            c => [Probe("team/app", c.Valid(c.F.OtherOnly, c.F.OtherOnlySize))]),
        new("manifest into a new repository names a missing blob", 400, "MANIFEST_BLOB_UNKNOWN",
            c => c.R.PutManifestAsync("brand/manifest", "1", U(Ctx.Manifest(Missing, 14, Missing, 14)), RegistryClient.OciManifest),
            c => [Probe("brand/manifest", Ctx.Manifest(Missing, 14, Missing, 14))]),
        new("index names a missing child manifest", 400, "MANIFEST_BLOB_UNKNOWN",
            c => c.R.PutManifestAsync("team/app", "2", U(IndexOf(Missing)), RegistryClient.OciIndex), _ => [Probe("team/app", IndexOf(Missing))]),
        new("layer descriptor states the wrong size", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U(c.Valid(c.F.Layer, c.F.LayerSize + 1)), RegistryClient.OciManifest),
            c => [Probe("team/app", c.Valid(c.F.Layer, c.F.LayerSize + 1))]),
        new("manifest over 4 MiB", 413, "SIZE_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", Huge(c), RegistryClient.OciManifest), c => [Probe("team/app", Huge(c))]),
        new("manifest is not JSON", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U("{\"schemaVersion\":2,"), RegistryClient.OciManifest), _ => [Probe("team/app", "{\"schemaVersion\":2,")]),
        new("manifest is a JSON array", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U("[]"), RegistryClient.OciManifest), _ => [Probe("team/app", "[]")]),
        new("mediaType disagrees with Content-Type", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U(c.Fresh("ct")), RegistryClient.DockerManifest), c => [Probe("team/app", c.Fresh("ct"))]),
        new("schema 1 manifest", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U(Schema1(c)), "application/vnd.docker.distribution.manifest.v1+prettyjws"),
            c => [Probe("team/app", Schema1(c))]),
        new("manifest without schemaVersion", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U(c.Fresh("sv").Replace("\"schemaVersion\":2,", "", StringComparison.Ordinal)), RegistryClient.OciManifest),
            c => [Probe("team/app", c.Fresh("sv").Replace("\"schemaVersion\":2,", "", StringComparison.Ordinal))]),
        new("index that carries layers", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U($$"""{"schemaVersion":2,"mediaType":"{{RegistryClient.OciIndex}}","manifests":[],"layers":[]}"""), RegistryClient.OciIndex)),
        new("unsupported manifest media type", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "2", U(c.Valid(c.F.Layer, c.F.LayerSize).Replace(RegistryClient.OciManifest, "application/vnd.example.thing+json", StringComparison.Ordinal)), "application/vnd.example.thing+json")),
        new("PUT by a digest that does not match the content", 400, "DIGEST_INVALID",
            c => c.R.PutManifestAsync("team/app", c.F.Image, U(c.Fresh("digest")), RegistryClient.OciManifest), c => [Probe("team/app", c.Fresh("digest"))]),
        new("PUT by a malformed digest reference", 400, "DIGEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "sha256:abc", U(c.Fresh("malformed")), RegistryClient.OciManifest), c => [Probe("team/app", c.Fresh("malformed"))]),

        // ---- names and tags ----
        new("uppercase repository name", 400, "NAME_INVALID",
            c => c.R.PutManifestAsync("Team/app", "1", c.F.ImageBytes, RegistryClient.OciManifest)),
        new("repository name with a leading slash", 400, "NAME_INVALID",
            c => c.R.PutManifestAsync("/team/app", "1", c.F.ImageBytes, RegistryClient.OciManifest)),
        new("repository name with a triple underscore (ECR's pattern allows '_' and '__')", 400, "NAME_INVALID",
            c => c.R.PutManifestAsync("team/a___b", "1", c.F.ImageBytes, RegistryClient.OciManifest)),
        new("repository name with '._' between components", 400, "NAME_INVALID", c => c.Send(HttpMethod.Post, "/v2/team/a._b/blobs/uploads/")),
        new("repository name with an empty component", 400, "NAME_INVALID", c => c.Send(HttpMethod.Post, "/v2/team//app/blobs/uploads/")),
        new("repository name ending in a separator", 400, "NAME_INVALID", c => c.Send(HttpMethod.Post, "/v2/team/app-/blobs/uploads/")),
        new("repository name of one character", 400, "NAME_INVALID", c => c.Send(HttpMethod.Post, "/v2/a/blobs/uploads/")),
        new("repository name of 257 characters", 400, "NAME_INVALID", c => c.Send(HttpMethod.Post, $"/v2/{new string('a', 257)}/blobs/uploads/")),
        new("tag starting with a dash", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", "-1", U(c.Fresh("tag")), RegistryClient.OciManifest), c => [Probe("team/app", c.Fresh("tag"))]),
        new("tag of 129 characters", 400, "MANIFEST_INVALID",
            c => c.R.PutManifestAsync("team/app", new string('t', 129), U(c.Fresh("long")), RegistryClient.OciManifest), c => [Probe("team/app", c.Fresh("long"))]),
        new("GET by a malformed tag", 404, "MANIFEST_UNKNOWN", c => c.R.GetManifestAsync("team/app", "bad*tag")),

        // ---- unknown things ----
        new("GET of an unknown blob", 404, "BLOB_UNKNOWN", c => c.Send(HttpMethod.Get, $"/v2/team/app/blobs/{Missing}")),
        new("GET of a blob another repository has", 404, "BLOB_UNKNOWN", c => c.Send(HttpMethod.Get, $"/v2/team/app/blobs/{c.F.OtherOnly}")),
        new("GET of an unknown tag", 404, "MANIFEST_UNKNOWN", c => c.R.GetManifestAsync("team/app", "nope")),
        new("GET of an unknown manifest digest", 404, "MANIFEST_UNKNOWN", c => c.R.GetManifestAsync("team/app", Missing)),
        new("GET of a manifest of an unknown repository", 404, "NAME_UNKNOWN", c => c.R.GetManifestAsync("nobody/here", "1")),
        new("GET of an OCI manifest the Accept header excludes", 404, "MANIFEST_UNKNOWN", c => c.R.GetManifestAsync("team/app", "1", RegistryClient.DockerManifest)),
        new("tags/list of an unknown repository", 404, "NAME_UNKNOWN", c => c.Send(HttpMethod.Get, "/v2/nobody/here/tags/list")),
        new("tags/list with n=abc", 400, "UNSUPPORTED", c => c.Send(HttpMethod.Get, "/v2/team/app/tags/list?n=abc")),
        new("_catalog with n=-1", 400, "UNSUPPORTED", c => c.Send(HttpMethod.Get, "/v2/_catalog?n=-1")),
        new("DELETE of an unknown blob", 404, "BLOB_UNKNOWN", c => c.Send(HttpMethod.Delete, $"/v2/team/app/blobs/{Missing}")),
        new("DELETE of an unknown manifest", 404, "MANIFEST_UNKNOWN", c => c.Send(HttpMethod.Delete, $"/v2/team/app/manifests/{Missing}")),
        new("DELETE of an unknown tag", 404, "MANIFEST_UNKNOWN", c => c.Send(HttpMethod.Delete, "/v2/team/app/manifests/nope")),
        new("Range not satisfiable", 416, "SIZE_INVALID", async c =>
        {
            var r = await c.Send(HttpMethod.Get, $"/v2/team/app/blobs/{c.F.KnownDigest}", null, null, ("Range", "bytes=1000-"));
            Assert.Equal("bytes */1000", RegistryClient.Header(r, "Content-Range"));
            return r;
        }),
        new("referrers of a malformed digest", 400, "DIGEST_INVALID", c => c.Send(HttpMethod.Get, "/v2/team/app/referrers/sha256:abc")),
        new("mount of a malformed digest into a new repository", 400, "DIGEST_INVALID",
            c => c.Send(HttpMethod.Post, "/v2/brand/mount/blobs/uploads/?mount=sha256:abc&from=team/app")),
        new("PATCH on a manifest URL", 405, "UNSUPPORTED", c => c.Send(HttpMethod.Patch, "/v2/team/app/manifests/1", U("{}"), "application/json")),
        new("unknown endpoint", 404, "UNSUPPORTED", c => c.Send(HttpMethod.Get, "/v2/team/app/nothing-here")),
    ];

    private static string IndexOf(string child) => $$$"""
        {"schemaVersion":2,"mediaType":"{{{RegistryClient.OciIndex}}}","manifests":[{"mediaType":"{{{RegistryClient.OciManifest}}}","digest":"{{{child}}}","size":100,"platform":{"architecture":"amd64","os":"linux"}}]}
        """;

    private static string Schema1(Ctx c) => $$"""
        {"schemaVersion":1,"name":"team/app","tag":"2","architecture":"amd64","fsLayers":[{"blobSum":"{{c.F.Layer}}"}],
         "history":[{"v1Compatibility":"{}"}],"signatures":[]}
        """;

    private static byte[] Huge(Ctx c)
    {
        var sb = new StringBuilder(c.Valid(c.F.Layer, c.F.LayerSize).TrimEnd().TrimEnd('}'));
        sb.Append(",\"annotations\":{\"padding\":\"").Append('x', 4 * 1024 * 1024).Append("\"}}");
        return U(sb.ToString());
    }

    public static TheoryData<string> CaseNames => new(Cases.Select(c => c.Name));

    /// <summary>Everything a client can see, plus the blob files on disk.</summary>
    private async Task<string> SnapshotAsync()
    {
        var r = fixture.Registry;
        var sb = new StringBuilder();
        foreach (var repo in await r.CatalogAsync())
        {
            sb.Append(repo).Append(": ").AppendJoin(',', await r.TagsAsync(repo) ?? []).AppendLine();
        }
        sb.AppendLine("blobs:").AppendJoin('\n', r.BlobFiles());
        return sb.ToString();
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task BadInput_SpecStatusAndCode_NothingStored(string name)
    {
        var c = Cases.Single(x => x.Name == name);
        var ctx = new Ctx(fixture);
        var before = await SnapshotAsync();

        using var r = await c.Send(ctx);
        var body = r.RequestMessage?.Method == HttpMethod.Head ? "" : await r.Content.ReadAsStringAsync();
        Assert.True(c.Status == (int)r.StatusCode, $"{name}: expected {c.Status}, got {(int)r.StatusCode} {body}");
        if (c.Code is not null)
        {
            Assert.True(c.Code == await RegistryClient.ErrorCodeAsync(r), $"{name}: expected {c.Code}, got {body}");
        }
        Assert.Equal("registry/2.0", RegistryClient.Header(r, "Docker-Distribution-API-Version"));

        Assert.Equal(before, await SnapshotAsync());
        foreach (var (repo, digest) in c.Unknown?.Invoke(ctx) ?? [])
        {
            using var m = await fixture.Registry.GetManifestAsync(repo, digest);
            Assert.Equal(HttpStatusCode.NotFound, m.StatusCode);
            using var b = await fixture.Registry.SendAsync(HttpMethod.Head, $"/v2/{repo}/blobs/{digest}");
            Assert.Equal(HttpStatusCode.NotFound, b.StatusCode);
        }
        // The known state still reads back whole.
        using var image = await fixture.Registry.GetManifestAsync("team/app", "1");
        Assert.Equal(fixture.ImageBytes, await image.Content.ReadAsByteArrayAsync());
    }
}
