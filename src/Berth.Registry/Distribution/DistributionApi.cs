using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Berth.Registry.Auth;
using Berth.Registry.Hosting;
using Berth.Registry.Metadata;
using Berth.Registry.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace Berth.Registry.Distribution;

/// <summary>
/// The OCI distribution API (v1.1) under /v2/: one handler that routes on the path from its end,
/// since repository names may contain slashes (and even the words "blobs" or "manifests").
/// </summary>
/// <remarks>
/// Names reach regions as <see cref="RegistryRoutes"/> says: NAME is a repository of the published region,
/// REGION/NAME one of REGION. The instance the container holds serves the published region and hands a
/// region-prefixed request to that region's instance (one per region, kept), whose Location and Link headers
/// carry the prefix back, so docker follows them into the same region.
/// </remarks>
public sealed partial class DistributionApi
{
    private const string ApiVersionHeader = "Docker-Distribution-API-Version";
    private const string DigestHeader = "Docker-Content-Digest";
    private const string UploadUuidHeader = "Docker-Upload-UUID";

    private readonly RegistryRegions _regions;
    private readonly RegistryService _registry;
    private readonly RegistryTokens _tokens;
    private readonly ILogger _logger;
    private readonly string _prefix;
    private readonly ConcurrentDictionary<string, DistributionApi> _byRegion = new(StringComparer.Ordinal);

    public DistributionApi(RegistryRegions regions, RegistryTokens tokens, ILogger<DistributionApi> logger)
        : this(regions, regions.Default.Service, tokens, logger, "")
    {
    }

    private DistributionApi(RegistryRegions regions, RegistryService registry, RegistryTokens tokens, ILogger logger, string prefix)
    {
        _regions = regions;
        _registry = registry;
        _tokens = tokens;
        _logger = logger;
        _prefix = prefix;
    }

    /// <summary>
    /// The instance serving a region named by a path prefix. A read never opens a region (nothing is there to read);
    /// a write opens it as an ECR call signed for it would.
    /// </summary>
    private async ValueTask<DistributionApi> ForRegionAsync(string region, string rest, bool reads, CancellationToken ct)
    {
        if (_byRegion.TryGetValue(region, out var api))
        {
            return api;
        }
        RegistryRegion registry;
        if (reads)
        {
            if (!_regions.TryGet(region, out registry))
            {
                var slash = rest.IndexOf('/', StringComparison.Ordinal);
                throw RegistryException.NameUnknown(region + "/" + (slash > 0 ? rest[..slash] : rest));
            }
        }
        else
        {
            try
            {
                registry = await _regions.GetAsync(region, ct).ConfigureAwait(false);
            }
            catch (Aws.Protocol.AwsException e)
            {
                throw new RegistryException("DENIED", e.Message, 403);
            }
        }
        return _byRegion.GetOrAdd(region, _ => new DistributionApi(_regions, registry.Service, _tokens, _logger, region + "/"));
    }

    public async Task HandleAsync(HttpContext context)
    {
        var ct = context.RequestAborted;
        context.Response.Headers[ApiVersionHeader] = "registry/2.0";
        try
        {
            if (_registry.Options.RequireAuth)
            {
                var reads = context.Request.Method is "GET" or "HEAD";
                var permissions = _tokens.ValidateBasic(context.Request.Headers.Authorization.ToString());
                if (permissions is null && !(reads && _registry.Options.AnonymousPull))
                {
                    context.Response.Headers.WWWAuthenticate = "Basic realm=\"Berth registry\"";
                    throw new RegistryException("UNAUTHORIZED", "authentication required; run: aws ecr get-login-password | docker login --username AWS --password-stdin " + _registry.Options.Host, 401);
                }
                if (!reads && permissions != "admin")
                {
                    // Pushing and deleting need an admin credential's token (docker reports "denied: ...").
                    throw new RegistryException("DENIED", "requested access to the resource is denied: the token comes from a read-only credential, which can pull but not push or delete", 403);
                }
            }
            var path = context.Request.Path.Value ?? "/v2/";
            var (region, rest) = RegistryRoutes.Split(path.Length > 4 ? path[4..] : "");
            var api = region is null ? this : await ForRegionAsync(region, rest, context.Request.Method is "GET" or "HEAD", ct).ConfigureAwait(false);
            await api.RouteAsync(context, rest, ct).ConfigureAwait(false);
        }
        catch (RegistryException e)
        {
            await WriteErrorAsync(context, e).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (BadHttpRequestException e)
        {
            await WriteErrorAsync(context, new RegistryException(e.StatusCode == 413 ? "SIZE_INVALID" : "UNSUPPORTED", e.Message, e.StatusCode)).ConfigureAwait(false);
        }
        catch (IOException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            LogUnhandled(_logger, e, context.Request.Method, context.Request.Path);
            await WriteErrorAsync(context, new RegistryException("UNKNOWN", "internal error; the request was not applied (see the server log)", 500)).ConfigureAwait(false);
        }
    }

    private Task RouteAsync(HttpContext context, string rest, CancellationToken ct)
    {
        var method = context.Request.Method;
        var path = context.Request.Path.Value ?? "/v2/";
        if (rest.Length == 0)
        {
            return method is "GET" or "HEAD" ? WriteJsonAsync(context, 200, "{}"u8.ToArray()) : throw MethodNotAllowed();
        }
        if (rest == "_catalog")
        {
            return method == "GET" ? CatalogAsync(context) : throw MethodNotAllowed();
        }
        var segs = rest.Split('/');
        if (segs.Length >= 3 && segs[^1] == "list" && segs[^2] == "tags")
        {
            var name = Name(segs, 2);
            return method == "GET" ? TagsListAsync(context, name) : throw MethodNotAllowed();
        }
        if (segs.Length >= 3 && segs[^2] == "manifests")
        {
            var name = Name(segs, 2);
            return method switch
            {
                "GET" or "HEAD" => GetManifestAsync(context, name, segs[^1], ct),
                "PUT" => PutManifestAsync(context, name, segs[^1], ct),
                "DELETE" => DeleteManifestAsync(context, name, segs[^1], ct),
                _ => throw MethodNotAllowed(),
            };
        }
        if (segs.Length >= 3 && segs[^2] == "referrers")
        {
            var name = Name(segs, 2);
            return method == "GET" ? ReferrersAsync(context, name, segs[^1]) : throw MethodNotAllowed();
        }
        if (segs.Length >= 4 && segs[^1] == "" && segs[^2] == "uploads" && segs[^3] == "blobs")
        {
            var name = Name(segs, 3);
            return method == "POST" ? StartUploadAsync(context, name, ct) : throw MethodNotAllowed();
        }
        if (segs.Length >= 3 && segs[^1] == "uploads" && segs[^2] == "blobs" && method == "POST")
        {
            return StartUploadAsync(context, Name(segs, 2), ct);
        }
        if (segs.Length >= 4 && segs[^2] == "uploads" && segs[^3] == "blobs")
        {
            var name = Name(segs, 3);
            var session = _registry.Blobs.FindUpload(segs[^1]);
            if (session is null || session.Repository != _registry.UploadKey(name))
            {
                throw RegistryException.UploadUnknown(segs[^1]);
            }
            return method switch
            {
                "GET" => UploadStatusAsync(context, name, session),
                "PATCH" => PatchUploadAsync(context, name, session, ct),
                "PUT" => FinishUploadAsync(context, name, session, ct),
                "DELETE" => CancelUploadAsync(context, session),
                _ => throw MethodNotAllowed(),
            };
        }
        if (segs.Length >= 3 && segs[^2] == "blobs")
        {
            var name = Name(segs, 2);
            return method switch
            {
                "GET" or "HEAD" => GetBlobAsync(context, name, segs[^1], ct),
                "DELETE" => DeleteBlobAsync(context, name, segs[^1], ct),
                _ => throw MethodNotAllowed(),
            };
        }
        throw new RegistryException("UNSUPPORTED", "no such registry endpoint", 404, path);
    }

    private static string Name(string[] segs, int suffix)
    {
        var name = string.Join('/', segs[..^suffix]);
        RegistryService.ValidateName(name);
        return name;
    }

    private static RegistryException MethodNotAllowed() => RegistryException.Unsupported("the operation is unsupported");

    // ---- blobs --------------------------------------------------------------------------------

    private static Digest ParseDigest(string? value)
        => Digest.TryParse(value, out var d) ? d.Value : throw RegistryException.DigestInvalid("provided digest did not match the format algorithm:hex (sha256 or sha512)", value);

    private async Task GetBlobAsync(HttpContext context, string name, string digestText, CancellationToken ct)
    {
        var digest = ParseDigest(digestText);
        if (_registry.FindRepository(name) is null)
        {
            throw RegistryException.NameUnknown(name);
        }
        if (_registry.StatBlob(name, digest) is null)
        {
            throw RegistryException.BlobUnknown(digestText);
        }
        await using var stream = _registry.Blobs.OpenRead(digest) ?? throw RegistryException.BlobUnknown(digestText);
        var size = stream.Length;
        var response = context.Response;
        response.Headers[DigestHeader] = digestText;
        response.Headers.AcceptRanges = "bytes";
        response.Headers.ETag = "\"" + digestText + "\"";
        response.Headers.CacheControl = "max-age=31536000";
        response.ContentType = "application/octet-stream";

        long offset = 0, length = size;
        var range = context.Request.Headers.Range.ToString();
        // RFC 9110: a Range of another unit, or of several ranges (which we do not serve as multipart), may be
        // ignored: the whole blob is the answer.
        if (range.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase) && !range.Contains(',', StringComparison.Ordinal))
        {
            if (!TryParseRange(range, size, out offset, out length))
            {
                response.Headers.ContentRange = $"bytes */{size}";
                throw RegistryException.SizeInvalid("requested range not satisfiable", 416);
            }
            response.StatusCode = 206;
            response.Headers.ContentRange = $"bytes {offset}-{offset + length - 1}/{size}";
        }
        else
        {
            response.StatusCode = 200;
        }
        response.ContentLength = length;
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }
        if (offset > 0)
        {
            stream.Seek(offset, SeekOrigin.Begin);
        }
        await StreamCopy.CopyAsync(stream, response.BodyWriter, length, ct).ConfigureAwait(false);
    }

    /// <summary>One range of <c>bytes=a-b</c>, <c>bytes=a-</c> or <c>bytes=-n</c>.</summary>
    internal static bool TryParseRange(string header, long size, out long offset, out long length)
    {
        offset = 0;
        length = 0;
        if (!header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase) || header.Contains(',', StringComparison.Ordinal))
        {
            return false;
        }
        var spec = header[6..].Trim();
        var dash = spec.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
        {
            return false;
        }
        var a = spec[..dash];
        var b = spec[(dash + 1)..];
        if (a.Length == 0)
        {
            if (!long.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out var suffix) || suffix == 0 || size == 0)
            {
                return false;
            }
            length = Math.Min(suffix, size);
            offset = size - length;
            return true;
        }
        if (!long.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out offset) || offset >= size)
        {
            return false;
        }
        long end = size - 1;
        if (b.Length > 0 && (!long.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out end) || end < offset))
        {
            return false;
        }
        end = Math.Min(end, size - 1);
        length = end - offset + 1;
        return true;
    }

    private async Task DeleteBlobAsync(HttpContext context, string name, string digestText, CancellationToken ct)
    {
        var digest = ParseDigest(digestText);
        _registry.RequireRepository(name);
        await _registry.UnlinkBlobAsync(name, digest, ct).ConfigureAwait(false);
        context.Response.StatusCode = 202;
        context.Response.ContentLength = 0;
    }

    private async Task StartUploadAsync(HttpContext context, string name, CancellationToken ct)
    {
        var query = context.Request.Query;
        // Nothing is created yet: the repository appears with the first blob or manifest stored in it.
        _registry.CheckPushTarget(name);
        if (query.TryGetValue("mount", out var mount))
        {
            var digest = ParseDigest(mount.ToString());
            var from = query["from"].ToString();
            if (from.Length > 0 && await _registry.MountAsync(name, digest, from, ct).ConfigureAwait(false) is not null)
            {
                BlobCreated(context, name, digest);
                return;
            }
            // Not mountable: fall back to an ordinary upload session, as the spec allows.
        }
        var session = _registry.Blobs.StartUpload(_registry.UploadKey(name));
        if (query.TryGetValue("digest", out var monolithic))
        {
            var digest = ParseDigest(monolithic.ToString());
            AllowLargeBody(context);
            await _registry.Blobs.AppendAsync(session, context.Request.BodyReader, null, ct).ConfigureAwait(false);
            await CompleteAsync(context, name, session, digest, ct).ConfigureAwait(false);
            return;
        }
        UploadAccepted(context, name, session, 202);
    }

    private Task UploadStatusAsync(HttpContext context, string name, UploadSession session)
    {
        UploadAccepted(context, name, session, 204);
        return Task.CompletedTask;
    }

    private async Task PatchUploadAsync(HttpContext context, string name, UploadSession session, CancellationToken ct)
    {
        await AppendBodyAsync(context, name, session, ct).ConfigureAwait(false);
        UploadAccepted(context, name, session, 202);
    }

    /// <summary>
    /// Appends the request body to the upload, at the offset its Content-Range names when it has one
    /// (PATCH chunks and the closing PUT alike); a chunk at the wrong offset is a 416.
    /// </summary>
    private async Task AppendBodyAsync(HttpContext context, string name, UploadSession session, CancellationToken ct)
    {
        AllowLargeBody(context);
        long? start = null;
        var contentRange = context.Request.Headers.ContentRange.ToString();
        if (contentRange.Length > 0)
        {
            start = ChunkStart(contentRange, context.Request.ContentLength);
        }
        if (!await _registry.Blobs.AppendAsync(session, context.Request.BodyReader, start, ct).ConfigureAwait(false))
        {
            throw OutOfOrder(context, name, session, start);
        }
    }

    /// <summary>
    /// The first byte of a chunk from its Content-Range; a malformed range, or one that disagrees with
    /// Content-Length, is a bad request (400), unlike a well-formed one at the wrong offset (416).
    /// </summary>
    private static long ChunkStart(string contentRange, long? contentLength)
    {
        if (!TryParseChunkRange(contentRange, out var s, out var e))
        {
            throw RegistryException.UploadInvalid($"invalid Content-Range '{contentRange}': expected start-end, inclusive");
        }
        if (contentLength is { } len && len != e - s + 1)
        {
            throw RegistryException.UploadInvalid($"Content-Range '{contentRange}' is {e - s + 1} bytes but Content-Length is {len}");
        }
        return s;
    }

    /// <summary>416 for a chunk at the wrong offset, with the Range and Location a client resumes from.</summary>
    private RegistryException OutOfOrder(HttpContext context, string name, UploadSession session, long? start)
    {
        context.Response.Headers.Range = session.Length == 0 ? "0-0" : $"0-{session.Length - 1}";
        context.Response.Headers.Location = UploadLocation(name, session);
        context.Response.Headers[UploadUuidHeader] = session.Id;
        return RegistryException.RangeInvalid($"chunk starts at {start} but the upload has {session.Length} bytes");
    }

    /// <summary>Content-Range of a chunk: "start-end" (the spec's form) or "bytes start-end/*".</summary>
    internal static bool TryParseChunkRange(string value, out long start, out long end)
    {
        start = end = 0;
        var v = value.Trim();
        if (v.StartsWith("bytes ", StringComparison.OrdinalIgnoreCase))
        {
            v = v[6..];
        }
        var slash = v.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            v = v[..slash];
        }
        var dash = v.IndexOf('-', StringComparison.Ordinal);
        return dash > 0
            && long.TryParse(v[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out start)
            && long.TryParse(v[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out end)
            && end >= start;
    }

    private async Task FinishUploadAsync(HttpContext context, string name, UploadSession session, CancellationToken ct)
    {
        var digestText = context.Request.Query["digest"].ToString();
        if (digestText.Length == 0)
        {
            throw RegistryException.DigestInvalid("the digest query parameter is required to complete an upload");
        }
        var digest = ParseDigest(digestText);
        await AppendBodyAsync(context, name, session, ct).ConfigureAwait(false);
        await CompleteAsync(context, name, session, digest, ct).ConfigureAwait(false);
    }

    private async Task CompleteAsync(HttpContext context, string name, UploadSession session, Digest digest, CancellationToken ct)
    {
        if (await _registry.Blobs.CompleteAsync(session, digest, ct).ConfigureAwait(false) is not { } size)
        {
            throw RegistryException.DigestInvalid("provided digest did not match uploaded content", digest.ToString());
        }
        await _registry.LinkAsync(name, digest, size, ct).ConfigureAwait(false);
        BlobCreated(context, name, digest);
    }

    private Task CancelUploadAsync(HttpContext context, UploadSession session)
    {
        _registry.Blobs.CancelUpload(session);
        context.Response.StatusCode = 204;
        return Task.CompletedTask;
    }

    private void BlobCreated(HttpContext context, string name, Digest digest)
    {
        context.Response.StatusCode = 201;
        context.Response.Headers.Location = $"/v2/{_prefix}{name}/blobs/{digest}";
        context.Response.Headers[DigestHeader] = digest.ToString();
        context.Response.ContentLength = 0;
    }

    private void UploadAccepted(HttpContext context, string name, UploadSession session, int status)
    {
        context.Response.StatusCode = status;
        context.Response.Headers.Location = UploadLocation(name, session);
        context.Response.Headers.Range = session.Length == 0 ? "0-0" : $"0-{session.Length - 1}";
        context.Response.Headers[UploadUuidHeader] = session.Id;
        context.Response.ContentLength = 0;
    }

    private string UploadLocation(string name, UploadSession session) => $"/v2/{_prefix}{name}/blobs/uploads/{session.Id}";

    private static void AllowLargeBody(HttpContext context)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }
    }

    // ---- manifests ----------------------------------------------------------------------------

    private async Task GetManifestAsync(HttpContext context, string name, string reference, CancellationToken ct)
    {
        if (Digest.LooksLikeDigest(reference))
        {
            ParseDigest(reference);
        }
        else if (!RegistryNames.IsValidTag(reference))
        {
            // Not a tag that could exist (the spec's only failure for a pull is 404).
            throw RegistryException.ManifestUnknown(reference);
        }
        if (_registry.FindRepository(name) is null)
        {
            throw RegistryException.NameUnknown(name);
        }
        var manifest = _registry.FindManifest(name, reference) ?? throw RegistryException.ManifestUnknown(reference);
        if (!Acceptable(context.Request.Headers.Accept, manifest.MediaType))
        {
            throw new RegistryException("MANIFEST_UNKNOWN", $"manifest is of type {manifest.MediaType}, which the Accept header does not allow", 404, reference);
        }
        var bytes = await _registry.ReadManifestAsync(manifest, ct).ConfigureAwait(false) ?? throw RegistryException.ManifestUnknown(reference);
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = manifest.MediaType;
        response.ContentLength = bytes.Length;
        response.Headers[DigestHeader] = manifest.Digest;
        response.Headers.ETag = "\"" + manifest.Digest + "\"";
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }
        await response.Body.WriteAsync(bytes, ct).ConfigureAwait(false);
        // Bookkeeping for ECR's lastRecordedPullTime must not delay the pull: done after the response.
        context.Response.OnCompleted(() => RecordPullAsync(manifest));
    }

    private async Task RecordPullAsync(Metadata.StoredManifest manifest)
    {
        try
        {
            await _registry.RecordPullAsync(manifest, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogPullNotRecorded(_logger, e, manifest.Repository, manifest.Digest);
        }
    }

    /// <summary>
    /// Docker schema 2 content is served to everyone (clients that list only schema 1 still read it);
    /// OCI content only to clients that accept it (or send no Accept, or */*).
    /// </summary>
    private static bool Acceptable(Microsoft.Extensions.Primitives.StringValues accept, string mediaType)
    {
        if (mediaType is MediaTypes.DockerManifest or MediaTypes.DockerManifestList)
        {
            return true;
        }
        var any = false;
        foreach (var header in accept)
        {
            foreach (var part in (header ?? "").Split(','))
            {
                var type = ManifestParser.NormalizeContentType(part);
                if (type is null)
                {
                    continue;
                }
                any = true;
                if (type == mediaType || type is "*/*" or "application/*")
                {
                    return true;
                }
            }
        }
        return !any;
    }

    private async Task PutManifestAsync(HttpContext context, string name, string reference, CancellationToken ct)
    {
        if (context.Request.ContentLength > ManifestParser.MaxManifestBytes)
        {
            throw RegistryException.SizeInvalid($"manifest is larger than {ManifestParser.MaxManifestBytes} bytes", 413);
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await context.Request.Body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > ManifestParser.MaxManifestBytes)
            {
                throw RegistryException.SizeInvalid($"manifest is larger than {ManifestParser.MaxManifestBytes} bytes", 413);
            }
            buffer.Write(chunk, 0, n);
        }
        var manifest = await _registry.PutManifestAsync(name, reference, buffer.ToArray(), context.Request.ContentType, ct).ConfigureAwait(false);
        var response = context.Response;
        response.StatusCode = 201;
        response.Headers.Location = $"/v2/{_prefix}{name}/manifests/{manifest.Digest}";
        response.Headers[DigestHeader] = manifest.Digest;
        if (manifest.Subject is not null)
        {
            response.Headers["OCI-Subject"] = manifest.Subject;
        }
        response.ContentLength = 0;
    }

    private async Task DeleteManifestAsync(HttpContext context, string name, string reference, CancellationToken ct)
    {
        _registry.RequireRepository(name);
        if (Digest.LooksLikeDigest(reference))
        {
            await _registry.DeleteManifestAsync(name, ParseDigest(reference).ToString(), ct).ConfigureAwait(false);
        }
        else if (RegistryNames.IsValidTag(reference))
        {
            await _registry.DeleteTagAsync(name, reference, ct).ConfigureAwait(false);
        }
        else
        {
            throw RegistryException.ManifestUnknown(reference);
        }
        context.Response.StatusCode = 202;
        context.Response.ContentLength = 0;
    }

    // ---- discovery ----------------------------------------------------------------------------

    private Task TagsListAsync(HttpContext context, string name)
    {
        _registry.RequireRepository(name);
        var (n, last) = Paging(context);
        var tags = _registry.State.TagsOf(name).Select(t => t.Tag).Order(StringComparer.Ordinal).ToList();
        var page = Page(tags, n, last, out var more);
        if (more)
        {
            context.Response.Headers.Link = $"</v2/{_prefix}{name}/tags/list?n={n}&last={Uri.EscapeDataString(page[^1])}>; rel=\"next\"";
        }
        return WriteJsonAsync(context, 200, JsonSerializer.SerializeToUtf8Bytes(new TagList(name, page), DistributionJsonContext.Default.TagList));
    }

    private Task CatalogAsync(HttpContext context)
    {
        var (n, last) = Paging(context);
        var names = _registry.State.Repositories.All.Select(r => r.Id).Order(StringComparer.Ordinal).ToList();
        var page = Page(names, n, last, out var more);
        if (more)
        {
            context.Response.Headers.Link = $"</v2/{_prefix}_catalog?n={n}&last={Uri.EscapeDataString(page[^1])}>; rel=\"next\"";
        }
        return WriteJsonAsync(context, 200, JsonSerializer.SerializeToUtf8Bytes(new Catalog(page), DistributionJsonContext.Default.Catalog));
    }

    private const int MaxPage = 10000;

    private static (int? N, string? Last) Paging(HttpContext context)
    {
        int? n = null;
        var q = context.Request.Query;
        if (q.TryGetValue("n", out var nv))
        {
            // The spec's error codes have no PAGINATION_NUMBER_INVALID; a larger n than we serve is cut to a
            // page with a Link to the rest, which the spec allows.
            if (!int.TryParse(nv.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                throw new RegistryException("UNSUPPORTED", "invalid number of results requested: n must be a non-negative integer", 400, nv.ToString());
            }
            n = Math.Min(parsed, MaxPage);
        }
        var last = q.TryGetValue("last", out var lv) ? lv.ToString() : null;
        return (n, last);
    }

    private static List<string> Page(List<string> sorted, int? n, string? last, out bool more)
    {
        IEnumerable<string> items = sorted;
        if (!string.IsNullOrEmpty(last))
        {
            items = items.Where(x => string.CompareOrdinal(x, last) > 0);
        }
        var rest = items.ToList();
        if (n is { } take && rest.Count > take)
        {
            more = take > 0;
            return rest.Take(take).ToList();
        }
        more = false;
        return rest;
    }

    private Task ReferrersAsync(HttpContext context, string name, string digestText)
    {
        var digest = ParseDigest(digestText).ToString();
        var artifactType = context.Request.Query["artifactType"].ToString();
        var referrers = _registry.State.ManifestsOf(name)
            .Where(m => m.Subject == digest)
            .Select(m => new ReferrerDescriptor(m.MediaType, m.Digest, m.Size, m.ArtifactType ?? m.ConfigMediaType, m.Annotations))
            .Where(d => artifactType.Length == 0 || d.ArtifactType == artifactType)
            .OrderBy(d => d.Digest, StringComparer.Ordinal)
            .ToList();
        if (artifactType.Length > 0)
        {
            context.Response.Headers["OCI-Filters-Applied"] = "artifactType";
        }
        var index = new ReferrersIndex(2, MediaTypes.OciIndex, referrers);
        context.Response.StatusCode = 200;
        context.Response.ContentType = MediaTypes.OciIndex;
        var bytes = JsonSerializer.SerializeToUtf8Bytes(index, DistributionJsonContext.Default.ReferrersIndex);
        context.Response.ContentLength = bytes.Length;
        return context.Response.Body.WriteAsync(bytes, context.RequestAborted).AsTask();
    }

    // ---- responses ----------------------------------------------------------------------------

    private static Task WriteJsonAsync(HttpContext context, int status, byte[] body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    private static Task WriteErrorAsync(HttpContext context, RegistryException e)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }
        context.Response.StatusCode = e.Status;
        var body = JsonSerializer.SerializeToUtf8Bytes(new ErrorList([new ErrorEntry(e.Code, e.Message, e.Detail)]), DistributionJsonContext.Default.ErrorList);
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = HttpMethods.IsHead(context.Request.Method) ? null : body.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.Body.WriteAsync(body, CancellationToken.None).AsTask();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not record a pull of {Repository}@{Digest}")]
    private static partial void LogPullNotRecorded(ILogger logger, Exception e, string repository, string digest);

    [LoggerMessage(Level = LogLevel.Error, Message = "Unhandled error in {Method} {Path}")]
    private static partial void LogUnhandled(ILogger logger, Exception e, string method, PathString path);
}

internal static class StreamCopy
{
    private const int Chunk = 256 * 1024;

    /// <summary>
    /// Copies exactly <paramref name="length"/> bytes from the file into the response pipe's own buffers
    /// (no intermediate copy; memory stays flat in blob size because each chunk is flushed before the next).
    /// </summary>
    public static async Task CopyAsync(Stream source, System.IO.Pipelines.PipeWriter destination, long length, CancellationToken ct)
    {
        while (length > 0)
        {
            var memory = destination.GetMemory((int)Math.Min(Chunk, length));
            var want = (int)Math.Min(memory.Length, length);
            var n = await source.ReadAsync(memory[..want], ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException("blob ended early");
            }
            destination.Advance(n);
            length -= n;
            var flush = await destination.FlushAsync(ct).ConfigureAwait(false);
            if (flush.IsCanceled || flush.IsCompleted)
            {
                return;
            }
        }
    }
}
