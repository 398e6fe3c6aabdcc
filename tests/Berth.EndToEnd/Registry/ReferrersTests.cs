using System.Net;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>OCI 1.1 referrers: artifacts whose subject is an image, the OCI-Subject header and the referrers API.</summary>
public sealed class ReferrersTests : RegistryServerTest
{
    private const string Sbom = "application/vnd.example.sbom.v1";
    private const string Signature = "application/vnd.example.signature.v1";
    private const string LegacyConfig = "application/vnd.example.legacy.config.v1+json";

    protected override Task RequireToolsAsync() => Task.CompletedTask;

    /// <summary>Pushes an artifact manifest (empty config unless <paramref name="configMediaType"/>) about <paramref name="subject"/>.</summary>
    private async Task<(string Digest, int Size, HttpResponseMessage Response)> PushArtifactAsync(string repo, string? artifactType, string subject, int subjectSize, string payload, string? configMediaType = null, string? annotation = null)
    {
        var config = configMediaType is null ? RegistryClient.Utf8("{}") : RegistryClient.Utf8("""{"legacy":true}""");
        var configDigest = await RegistryApi.PushBlobAsync(repo, config);
        var blob = RegistryClient.Utf8(payload);
        var blobDigest = await RegistryApi.PushBlobAsync(repo, blob);
        var manifest = RegistryClient.Utf8($$$"""
            {"schemaVersion":2,"mediaType":"{{{RegistryClient.OciManifest}}}"{{{(artifactType is null ? "" : $",\"artifactType\":\"{artifactType}\"")}}},
             "config":{"mediaType":"{{{configMediaType ?? RegistryClient.OciEmpty}}}","digest":"{{{configDigest}}}","size":{{{config.Length}}}},
             "layers":[{"mediaType":"application/json","digest":"{{{blobDigest}}}","size":{{{blob.Length}}}}],
             "subject":{"mediaType":"{{{RegistryClient.OciManifest}}}","digest":"{{{subject}}}","size":{{{subjectSize}}}},
             "annotations":{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"{{{(annotation is null ? "" : $",\"org.example.note\":\"{annotation}\"")}}}}}
            """);
        var digest = RegistryClient.Sha256(manifest);
        var r = await RegistryApi.PutManifestAsync(repo, digest, manifest, RegistryClient.OciManifest);
        return (digest, manifest.Length, r);
    }

    private async Task<(HttpResponseMessage Response, JsonArray Manifests)> ReferrersAsync(string repo, string digest, string? artifactType = null)
    {
        var r = await RegistryApi.SendAsync(HttpMethod.Get, $"/v2/{repo}/referrers/{digest}" + (artifactType is null ? "" : "?artifactType=" + Uri.EscapeDataString(artifactType)));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal(RegistryClient.OciIndex, r.Content.Headers.ContentType!.MediaType);
        var index = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Assert.Equal(2, index["schemaVersion"]!.GetValue<int>());
        Assert.Equal(RegistryClient.OciIndex, index["mediaType"]!.GetValue<string>());
        return (r, index["manifests"]!.AsArray());
    }

    [Fact]
    public async Task ArtifactsWithSubject_OciSubjectHeader_ReferrersListedAndFilteredByArtifactType()
    {
        var (image, imageBytes) = await RegistryApi.PushImageAsync("team/app", "1", "referred");

        var (sbom, sbomSize, sbomPut) = await PushArtifactAsync("team/app", Sbom, image, imageBytes.Length, """{"packages":[]}""", annotation: "first");
        using (sbomPut)
        {
            Assert.Equal(HttpStatusCode.Created, sbomPut.StatusCode);
            Assert.Equal(image, RegistryClient.Header(sbomPut, "OCI-Subject"));
            Assert.Equal(sbom, RegistryClient.Header(sbomPut, "Docker-Content-Digest"));
        }
        var (signature, _, sigPut) = await PushArtifactAsync("team/app", Signature, image, imageBytes.Length, """{"sig":"abc"}""");
        using (sigPut)
        {
            Assert.Equal(HttpStatusCode.Created, sigPut.StatusCode);
            Assert.Equal(image, RegistryClient.Header(sigPut, "OCI-Subject"));
        }
        // No artifactType: the referrers API reports the config's media type instead.
        var (legacy, _, legacyPut) = await PushArtifactAsync("team/app", null, image, imageBytes.Length, """{"old":1}""", configMediaType: LegacyConfig);
        using (legacyPut)
        {
            Assert.Equal(HttpStatusCode.Created, legacyPut.StatusCode);
        }

        var (all, manifests) = await ReferrersAsync("team/app", image);
        using (all)
        {
            Assert.Equal("", RegistryClient.Header(all, "OCI-Filters-Applied"));
            Assert.Equal(3, manifests.Count);
            var byDigest = manifests.ToDictionary(m => m!["digest"]!.GetValue<string>(), m => m!);
            Assert.Equal(Sbom, byDigest[sbom]["artifactType"]!.GetValue<string>());
            Assert.Equal(Signature, byDigest[signature]["artifactType"]!.GetValue<string>());
            Assert.Equal(LegacyConfig, byDigest[legacy]["artifactType"]!.GetValue<string>());
            Assert.Equal(RegistryClient.OciManifest, byDigest[sbom]["mediaType"]!.GetValue<string>());
            Assert.Equal(sbomSize, byDigest[sbom]["size"]!.GetValue<int>());
            Assert.Equal("first", byDigest[sbom]["annotations"]!["org.example.note"]!.GetValue<string>());
            Assert.Equal("2024-01-01T00:00:00Z", byDigest[signature]["annotations"]!["org.opencontainers.image.created"]!.GetValue<string>());
        }

        var (filtered, sboms) = await ReferrersAsync("team/app", image, Sbom);
        using (filtered)
        {
            Assert.Equal("artifactType", RegistryClient.Header(filtered, "OCI-Filters-Applied"));
            Assert.Equal(sbom, Assert.Single(sboms)!["digest"]!.GetValue<string>());
        }
        var (none, nothing) = await ReferrersAsync("team/app", image, "application/vnd.example.unknown");
        using (none)
        {
            Assert.Equal("artifactType", RegistryClient.Header(none, "OCI-Filters-Applied"));
            Assert.Empty(nothing);
        }

        // A digest nothing refers to, and a repository that does not exist: an empty list, never 404.
        var (empty, emptyList) = await ReferrersAsync("team/app", sbom);
        using (empty)
        {
            Assert.Empty(emptyList);
        }
        var (unknownRepo, unknownList) = await ReferrersAsync("nobody/here", image);
        using (unknownRepo)
        {
            Assert.Empty(unknownList);
        }

        // The referrers are ordinary manifests too: fetchable by digest, and the subject is unchanged.
        using var get = await RegistryApi.GetManifestAsync("team/app", sbom, RegistryClient.OciManifest);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(sbom, RegistryClient.Header(get, "Docker-Content-Digest"));
        Assert.Equal(["1"], await RegistryApi.TagsAsync("team/app"));

        // Deleting a referrer removes it from the list.
        using var del = await RegistryApi.SendAsync(HttpMethod.Delete, $"/v2/team/app/manifests/{signature}");
        Assert.Equal(HttpStatusCode.Accepted, del.StatusCode);
        var (after, remaining) = await ReferrersAsync("team/app", image);
        using (after)
        {
            Assert.Equal(2, remaining.Count);
            Assert.DoesNotContain(remaining, m => m!["digest"]!.GetValue<string>() == signature);
        }
    }

    [Fact]
    public async Task ArtifactPushedBeforeItsSubject_IsAcceptedAndListed()
    {
        // The spec: a registry MUST accept a manifest whose subject does not exist (yet).
        var missing = RegistryClient.Sha256(RegistryClient.Utf8("an image pushed later"));
        var (sbom, _, put) = await PushArtifactAsync("early/app", Sbom, missing, 123, """{"early":true}""");
        using (put)
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
            Assert.Equal(missing, RegistryClient.Header(put, "OCI-Subject"));
        }
        var (r, list) = await ReferrersAsync("early/app", missing);
        using (r)
        {
            Assert.Equal(sbom, Assert.Single(list)!["digest"]!.GetValue<string>());
        }
    }
}
