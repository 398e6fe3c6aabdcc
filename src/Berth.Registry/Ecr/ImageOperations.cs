using System.Globalization;
using System.Text;
using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Metadata;
using Berth.Registry.Storage;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>
/// ListImages, DescribeImages, BatchGetImage, BatchDeleteImage, PutImage: the ECR view of the manifests
/// and tags the /v2/ API stores (an image is a manifest with the tags that point at it).
/// </summary>
internal sealed class ImageOperations(RegistryService registry, Arns arns) : EcrHandlers(registry, arns)
{
    private const string ActiveStatus = "ACTIVE";

    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.ListImages, Json.ListImagesRequest, Json.ListImagesResponse, (r, _) => Task.FromResult(List(r)));
        s.Map(EcrOperations.DescribeImages, Json.DescribeImagesRequest, Json.DescribeImagesResponse, (r, _) => Task.FromResult(Describe(r)));
        s.Map(EcrOperations.BatchGetImage, Json.BatchGetImageRequest, Json.BatchGetImageResponse, BatchGetAsync);
        s.Map(EcrOperations.BatchDeleteImage, Json.BatchDeleteImageRequest, Json.BatchDeleteImageResponse, BatchDeleteAsync);
        s.Map(EcrOperations.PutImage, Json.PutImageRequest, Json.PutImageResponse, PutAsync);
    }

    // ---- reading ------------------------------------------------------------------------------

    /// <summary>One entry per tag of each tagged image, one digest-only entry per untagged image.</summary>
    private ListImagesResponse List(ListImagesRequest req)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var entries = new List<(string Key, ImageIdentifier Id)>();
        if (StatusMatches(req.Filter?.ImageStatus))
        {
            foreach (var image in Registry.ImagesOf(name).Where(i => TagStatusMatches(req.Filter?.TagStatus, i)))
            {
                var key = SortKey(image);
                if (image.Tags.Count == 0)
                {
                    entries.Add((key, new ImageIdentifier { ImageDigest = image.Manifest.Digest }));
                }
                foreach (var tag in image.Tags)
                {
                    entries.Add((key + "|" + tag, new ImageIdentifier { ImageDigest = image.Manifest.Digest, ImageTag = tag }));
                }
            }
        }
        var (page, next) = EcrPaging.Page(entries, e => e.Key, req.MaxResults, req.NextToken);
        return new ListImagesResponse { ImageIds = page.Select(e => e.Id).ToList(), NextToken = next };
    }

    private DescribeImagesResponse Describe(DescribeImagesRequest req)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var view = new ImagesView(Registry.ImagesOf(name));
        if (req.ImageIds is { Count: > 0 } ids)
        {
            if (req.MaxResults is not null || req.NextToken is not null)
            {
                throw EcrErrors.Invalid("maxResults", "maxResults and nextToken cannot be used together with imageIds");
            }
            var found = new List<RegistryImage>();
            foreach (var id in ids)
            {
                var (image, code, reason) = view.Resolve(id);
                if (image is null)
                {
                    throw code is ImageFailureCodeValues.ImageNotFound or ImageFailureCodeValues.ImageTagDoesNotMatchDigest
                        ? EcrErrors.ImageNotFound(id, name, RegistryId)
                        : AwsException.InvalidParameter(reason!);
                }
                if (!found.Contains(image))
                {
                    found.Add(image);
                }
            }
            return new DescribeImagesResponse { ImageDetails = found.Where(i => TagStatusMatches(req.Filter?.TagStatus, i)).Select(i => Detail(name, i)).ToList() };
        }
        var all = StatusMatches(req.Filter?.ImageStatus) ? view.Images.Where(i => TagStatusMatches(req.Filter?.TagStatus, i)) : [];
        var (page, next) = EcrPaging.Page(all, SortKey, req.MaxResults, req.NextToken);
        return new DescribeImagesResponse { ImageDetails = page.Select(i => Detail(name, i)).ToList(), NextToken = next };
    }

    private ImageDetail Detail(string repository, RegistryImage image) => new()
    {
        RegistryId = RegistryId,
        RepositoryName = repository,
        ImageDigest = image.Manifest.Digest,
        ImageTags = image.Tags.Count > 0 ? [.. image.Tags] : null,
        ImageSizeInBytes = image.Manifest.ImageSize,
        ImagePushedAt = image.Manifest.PushedAt,
        ImageManifestMediaType = image.Manifest.MediaType,
        ArtifactMediaType = image.Manifest.ConfigMediaType,
        LastRecordedPullTime = image.Manifest.LastPulledAt,
        SubjectManifestDigest = image.Manifest.Subject,
        ImageStatus = ActiveStatus,
        // No imageScanFindingsSummary ever: Berth has no scanner (ScanOperations).
        ImageScanStatus = ScanOperations.StatusOf(image.Manifest),
    };

    private async Task<BatchGetImageResponse> BatchGetAsync(BatchGetImageRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var view = new ImagesView(Registry.ImagesOf(name));
        var accepted = req.AcceptedMediaTypes;
        var images = new List<EcrImage>();
        var failures = new List<ImageFailure>();
        var served = new HashSet<(string, string?)>();
        foreach (var id in req.ImageIds!)
        {
            var (image, code, reason) = view.Resolve(id);
            if (image is null)
            {
                failures.Add(new ImageFailure { ImageId = Echo(id), FailureCode = code, FailureReason = reason });
                continue;
            }
            var mediaType = image.Manifest.MediaType;
            if (accepted is { Count: > 0 } && !accepted.Contains(mediaType, StringComparer.OrdinalIgnoreCase))
            {
                failures.Add(new ImageFailure
                {
                    ImageId = Echo(id),
                    FailureCode = ImageFailureCodeValues.ImageNotFound,
                    FailureReason = $"Requested image not found: its manifest is {mediaType}, which is not among acceptedMediaTypes",
                });
                continue;
            }
            if (!served.Add((image.Manifest.Digest, id.ImageTag)))
            {
                continue;
            }
            var bytes = await Registry.ReadManifestAsync(image.Manifest, ct).ConfigureAwait(false);
            if (bytes is null)
            {
                failures.Add(new ImageFailure { ImageId = Echo(id), FailureCode = ImageFailureCodeValues.ImageNotFound, FailureReason = "Requested image not found" });
                continue;
            }
            images.Add(new EcrImage
            {
                RegistryId = RegistryId,
                RepositoryName = name,
                ImageId = new ImageIdentifier { ImageDigest = image.Manifest.Digest, ImageTag = id.ImageTag },
                ImageManifest = Encoding.UTF8.GetString(bytes),
                ImageManifestMediaType = mediaType,
            });
            // A BatchGetImage is how ECR clients pull, so it counts for lastRecordedPullTime.
            await Registry.RecordPullAsync(image.Manifest, CancellationToken.None).ConfigureAwait(false);
        }
        return new BatchGetImageResponse { Images = images, Failures = failures };
    }

    // ---- changing -----------------------------------------------------------------------------

    /// <summary>
    /// By tag: removes the tag (the image goes with its last tag). By digest: removes the image and all
    /// its tags. Each id succeeds or fails on its own; the response lists every tag removed.
    /// </summary>
    private async Task<BatchDeleteImageResponse> BatchDeleteAsync(BatchDeleteImageRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var deleted = new List<ImageIdentifier>();
        var failures = new List<ImageFailure>();
        foreach (var id in req.ImageIds!)
        {
            if (ImagesView.CheckId(id) is { } bad)
            {
                failures.Add(new ImageFailure { ImageId = Echo(id), FailureCode = bad.Code, FailureReason = bad.Reason });
                continue;
            }
            try
            {
                var result = await Registry.DeleteImageAsync(name, id.ImageDigest, id.ImageTag, ct).ConfigureAwait(false);
                if (result.RemovedTags.Count == 0)
                {
                    deleted.Add(new ImageIdentifier { ImageDigest = result.Digest });
                }
                deleted.AddRange(result.RemovedTags.Select(t => new ImageIdentifier { ImageDigest = result.Digest, ImageTag = t }));
            }
            catch (RegistryException e) when (e.Code is "MANIFEST_UNKNOWN" or "TAG_DIGEST_MISMATCH" or "MANIFEST_REFERENCED")
            {
                failures.Add(new ImageFailure
                {
                    ImageId = Echo(id),
                    FailureCode = e.Code switch
                    {
                        "TAG_DIGEST_MISMATCH" => ImageFailureCodeValues.ImageTagDoesNotMatchDigest,
                        "MANIFEST_REFERENCED" => ImageFailureCodeValues.ImageReferencedByManifestList,
                        _ => ImageFailureCodeValues.ImageNotFound,
                    },
                    FailureReason = e.Code == "MANIFEST_UNKNOWN" ? "Requested image not found" : e.Message,
                });
            }
            catch (RegistryException e)
            {
                throw EcrErrors.From(e, name, RegistryId);
            }
        }
        return new BatchDeleteImageResponse { ImageIds = deleted, Failures = failures };
    }

    /// <summary>
    /// Stores a manifest (its config and layers must be in the repository already) under a tag or by digest.
    /// ImageAlreadyExistsException when nothing would change; ImageTagAlreadyExistsException when an immutable
    /// tag would move; ImageDigestDoesNotMatchException when imageDigest is not the manifest's digest.
    /// </summary>
    private async Task<PutImageResponse> PutAsync(PutImageRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var content = Encoding.UTF8.GetBytes(req.ImageManifest!);
        if (req.ImageTag is { } tag && !RegistryNames.IsValidTag(tag))
        {
            throw EcrErrors.From(RegistryException.TagInvalid(tag), name, RegistryId);
        }
        if (req.ImageManifestMediaType is { } declared && DeclaredMediaType(content) is { } inManifest && inManifest != declared)
        {
            throw EcrErrors.Invalid("imageManifestMediaType", $"'{declared}' does not match the manifest's mediaType '{inManifest}'");
        }
        string? expected = null;
        if (req.ImageDigest is { } given)
        {
            if (!Digest.TryParse(given, out var parsed))
            {
                throw EcrErrors.Invalid("imageDigest", $"'{given}' is not a valid digest (sha256:<64 hex digits> or sha512:<128 hex digits>)");
            }
            var actual = parsed.Value.Algorithm == "sha512"
                ? Digest.FromHash("sha512", System.Security.Cryptography.SHA512.HashData(content))
                : Digest.Sha256(content);
            if (actual != parsed.Value)
            {
                throw new AwsException("ImageDigestDoesNotMatchException",
                    $"The specified image digest '{given}' does not match the digest that the registry calculated for the image: '{actual}'");
            }
            expected = given;
        }
        var reference = req.ImageTag ?? expected ?? Digest.Sha256(content).ToString();
        StoredManifest manifest;
        try
        {
            manifest = await Registry.PutManifestAsync(name, reference, content, req.ImageManifestMediaType,
                new ManifestPutOptions(CreateRepository: false, RejectUnchanged: true), ct).ConfigureAwait(false);
        }
        catch (RegistryException e) when (e.Code == "MANIFEST_BLOB_UNKNOWN" && IsChild(content, req.ImageManifestMediaType, e.Detail))
        {
            throw new AwsException("ReferencedImagesNotFoundException",
                $"The manifest list references images that do not exist in the repository with name '{name}' in registry with id '{RegistryId}': [{e.Detail}]");
        }
        catch (RegistryException e)
        {
            throw EcrErrors.From(e, name, RegistryId);
        }
        return new PutImageResponse
        {
            Image = new EcrImage
            {
                RegistryId = RegistryId,
                RepositoryName = name,
                ImageId = new ImageIdentifier { ImageDigest = manifest.Digest, ImageTag = req.ImageTag },
                ImageManifest = req.ImageManifest,
                ImageManifestMediaType = manifest.MediaType,
            },
        };
    }

    /// <summary>The manifest's own mediaType field (null when absent or unreadable: the manifest parser reports that).</summary>
    private static string? DeclaredMediaType(byte[] content)
    {
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(content);
            return doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
                && doc.RootElement.TryGetProperty("mediaType", out var mt) && mt.ValueKind == System.Text.Json.JsonValueKind.String
                ? mt.GetString()
                : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static bool IsChild(byte[] content, string? mediaType, string? digest)
    {
        try
        {
            return ManifestParser.Parse(content, mediaType).Children.Any(c => c.Digest == digest);
        }
        catch (RegistryException)
        {
            return false;
        }
    }

    // ---- helpers ------------------------------------------------------------------------------

    /// <summary>Newest first, then by digest: the order of ListImages and DescribeImages pages.</summary>
    private static string SortKey(RegistryImage image)
        => (DateTimeOffset.MaxValue.UtcTicks - image.Manifest.PushedAt.UtcTicks).ToString("D19", CultureInfo.InvariantCulture) + "|" + image.Manifest.Digest;

    private static bool TagStatusMatches(string? filter, RegistryImage image) => filter switch
    {
        TagStatusValues.TAGGED => image.Tags.Count > 0,
        TagStatusValues.UNTAGGED => image.Tags.Count == 0,
        _ => true,
    };

    /// <summary>Berth has no archive storage: every image is ACTIVE.</summary>
    private static bool StatusMatches(string? filter) => filter is null or ActiveStatus or "ANY";

    private static ImageIdentifier Echo(ImageIdentifier id) => new() { ImageDigest = id.ImageDigest, ImageTag = id.ImageTag };
}

/// <summary>One consistent read of a repository's images, indexed by digest and by tag.</summary>
internal sealed class ImagesView
{
    private readonly Dictionary<string, RegistryImage> _byDigest;
    private readonly Dictionary<string, RegistryImage> _byTag;

    public ImagesView(IReadOnlyList<RegistryImage> images)
    {
        Images = images;
        _byDigest = images.ToDictionary(i => i.Manifest.Digest, StringComparer.Ordinal);
        _byTag = images.SelectMany(i => i.Tags.Select(t => (t, i))).ToDictionary(x => x.t, x => x.i, StringComparer.Ordinal);
    }

    public IReadOnlyList<RegistryImage> Images { get; }

    /// <summary>The failure code and reason for an id that can name no image (no digest or tag, a malformed one), or null.</summary>
    public static (string Code, string Reason)? CheckId(ImageIdentifier id)
    {
        if (id.ImageDigest is null && id.ImageTag is null)
        {
            return (ImageFailureCodeValues.MissingDigestAndTag, "Invalid request parameters: both tag and digest cannot be null");
        }
        if (id.ImageDigest is { } d && !Digest.TryParse(d, out _))
        {
            return (ImageFailureCodeValues.InvalidImageDigest, $"Invalid request parameters: image digest '{d}' is not sha256:<64 hex digits> or sha512:<128 hex digits>");
        }
        if (id.ImageTag is { } t && !RegistryNames.IsValidTag(t))
        {
            return (ImageFailureCodeValues.InvalidImageTag, $"Invalid request parameters: image tag '{t}' is not a valid tag");
        }
        return null;
    }

    /// <summary>The image an id names, or why none: ECR's failure code and reason.</summary>
    public (RegistryImage? Image, string? Code, string? Reason) Resolve(ImageIdentifier id)
    {
        if (CheckId(id) is { } bad)
        {
            return (null, bad.Code, bad.Reason);
        }
        RegistryImage? image;
        if (id.ImageTag is { } tag)
        {
            if (!_byTag.TryGetValue(tag, out image))
            {
                return (null, ImageFailureCodeValues.ImageNotFound, "Requested image not found");
            }
            if (id.ImageDigest is { } digest && digest != image.Manifest.Digest)
            {
                return (null, ImageFailureCodeValues.ImageTagDoesNotMatchDigest, $"Invalid request parameters: given tag '{tag}' does not map to the given digest '{digest}'");
            }
            return (image, null, null);
        }
        return _byDigest.TryGetValue(id.ImageDigest!, out image)
            ? (image, null, null)
            : (null, ImageFailureCodeValues.ImageNotFound, "Requested image not found");
    }
}
