using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Storage;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>
/// BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, GetDownloadUrlForLayer:
/// ECR's layer push and pull, on the same upload sessions and content-addressed blobs as /v2/.
/// </summary>
internal sealed class LayerOperations(RegistryService registry, Arns arns) : EcrHandlers(registry, arns)
{
    /// <summary>The part size InitiateLayerUpload suggests (parts may be up to 20 MiB, as in ECR's model).</summary>
    public const long PartSize = 10 * 1024 * 1024;

    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.BatchCheckLayerAvailability, Json.BatchCheckLayerAvailabilityRequest, Json.BatchCheckLayerAvailabilityResponse, (r, _) => Task.FromResult(Check(r)));
        s.Map(EcrOperations.InitiateLayerUpload, Json.InitiateLayerUploadRequest, Json.InitiateLayerUploadResponse, (r, _) => Task.FromResult(Initiate(r)));
        s.Map(EcrOperations.UploadLayerPart, Json.UploadLayerPartRequest, Json.UploadLayerPartResponse, UploadPartAsync);
        s.Map(EcrOperations.CompleteLayerUpload, Json.CompleteLayerUploadRequest, Json.CompleteLayerUploadResponse, CompleteAsync);
        s.Map(EcrOperations.GetDownloadUrlForLayer, Json.GetDownloadUrlForLayerRequest, Json.GetDownloadUrlForLayerResponse, (r, _) => Task.FromResult(DownloadUrl(r)));
    }

    private BatchCheckLayerAvailabilityResponse Check(BatchCheckLayerAvailabilityRequest req)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var layers = new List<Layer>();
        var failures = new List<LayerFailure>();
        foreach (var text in req.LayerDigests!)
        {
            if (text.Length == 0)
            {
                failures.Add(new LayerFailure { LayerDigest = text, FailureCode = LayerFailureCodeValues.MissingLayerDigest, FailureReason = "Invalid request parameters: the layer digest is empty" });
            }
            else if (!Digest.TryParse(text, out var digest))
            {
                failures.Add(new LayerFailure { LayerDigest = text, FailureCode = LayerFailureCodeValues.InvalidLayerDigest, FailureReason = $"Invalid request parameters: '{text}' is not sha256:<64 hex digits> or sha512:<128 hex digits>" });
            }
            else if (Registry.StatBlob(name, digest.Value) is { } size)
            {
                layers.Add(new Layer { LayerDigest = text, LayerAvailability = LayerAvailabilityValues.AVAILABLE, LayerSize = size });
            }
            else
            {
                layers.Add(new Layer { LayerDigest = text, LayerAvailability = LayerAvailabilityValues.UNAVAILABLE });
            }
        }
        return new BatchCheckLayerAvailabilityResponse { Layers = layers, Failures = failures };
    }

    private InitiateLayerUploadResponse Initiate(InitiateLayerUploadRequest req)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var session = Registry.Blobs.StartUpload(Registry.UploadKey(name));
        return new InitiateLayerUploadResponse { UploadId = session.Id, PartSize = PartSize };
    }

    /// <summary>Appends one part; it must start right after the bytes received so far and its range must match its length.</summary>
    private async Task<UploadLayerPartResponse> UploadPartAsync(UploadLayerPartRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var session = Session(name, req.UploadId!);
        var blob = req.LayerPartBlob!;
        long first = req.PartFirstByte!.Value, last = req.PartLastByte!.Value;
        if (blob.Length == 0 || last < first || last - first + 1 != blob.Length || first != session.Length)
        {
            throw InvalidPart(name, req.UploadId!, session.Length,
                blob.Length == 0 ? "the part is empty"
                : last - first + 1 != blob.Length ? $"partFirstByte {first} and partLastByte {last} describe {Math.Max(0, last - first + 1)} bytes but layerPartBlob has {blob.Length}"
                : $"partFirstByte {first} does not continue the upload, which has received {session.Length} bytes");
        }
        bool appended;
        try
        {
            appended = await Registry.Blobs.AppendAsync(session, new MemoryStream(blob, writable: false), first, ct).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // Completed (or expired) while this part was on its way.
            throw EcrErrors.UploadNotFound(req.UploadId!, name, RegistryId);
        }
        if (!appended)
        {
            throw InvalidPart(name, req.UploadId!, session.Length, $"partFirstByte {first} does not continue the upload, which has received {session.Length} bytes");
        }
        return new UploadLayerPartResponse { RegistryId = RegistryId, RepositoryName = name, UploadId = session.Id, LastByteReceived = session.Length - 1 };
    }

    /// <summary>
    /// Verifies the received bytes against the layer digest and publishes the layer into the repository.
    /// The upload is over either way; on a mismatch nothing is stored (InvalidLayerException).
    /// </summary>
    private async Task<CompleteLayerUploadResponse> CompleteAsync(CompleteLayerUploadRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var session = Session(name, req.UploadId!);
        var digests = req.LayerDigests!.Distinct(StringComparer.Ordinal).ToList();
        if (digests.Count != 1)
        {
            throw EcrErrors.Invalid("layerDigests", "an upload produces one layer: give its digest (once)");
        }
        if (!Digest.TryParse(digests[0], out var parsed))
        {
            throw new AwsException("InvalidLayerException", $"Invalid layer digest '{digests[0]}': expected sha256:<64 hex digits> or sha512:<128 hex digits>");
        }
        var digest = parsed.Value;
        if (session.Length == 0)
        {
            throw new AwsException("EmptyUploadException", $"The layer upload '{session.Id}' does not contain any layer parts.");
        }
        if (Registry.StatBlob(name, digest) is not null)
        {
            Registry.Blobs.CancelUpload(session);
            throw new AwsException("LayerAlreadyExistsException",
                $"Layer with digest '{digest}' already exists in the repository with name '{name}' in registry with id '{RegistryId}'");
        }
        long? size;
        try
        {
            size = await Registry.Blobs.CompleteAsync(session, digest, ct).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            throw EcrErrors.UploadNotFound(req.UploadId!, name, RegistryId);
        }
        if (size is null)
        {
            throw new AwsException("InvalidLayerException",
                $"The layer digest calculation performed upon receipt of the image layer does not match the digest specified ('{digest}'); the upload is discarded.");
        }
        try
        {
            await Registry.LinkAsync(name, digest, size.Value, ct).ConfigureAwait(false);
        }
        catch (RegistryException e)
        {
            throw EcrErrors.From(e, name, RegistryId);
        }
        return new CompleteLayerUploadResponse { RegistryId = RegistryId, RepositoryName = name, UploadId = session.Id, LayerDigest = digest.ToString() };
    }

    /// <summary>The layer's /v2/ blob URL on this registry (a plain GET; with --registry-auth it needs the Basic credential too).</summary>
    private GetDownloadUrlForLayerResponse DownloadUrl(GetDownloadUrlForLayerRequest req)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        var text = req.LayerDigest!;
        if (!Digest.TryParse(text, out var digest))
        {
            throw EcrErrors.Invalid("layerDigest", $"'{text}' is not sha256:<64 hex digits> or sha512:<128 hex digits>");
        }
        if (Registry.StatBlob(name, digest.Value) is null)
        {
            throw new AwsException("LayersNotFoundException",
                $"The layer with digest '{text}' does not exist in the repository with name '{name}' in registry with id '{RegistryId}'");
        }
        return new GetDownloadUrlForLayerResponse
        {
            DownloadUrl = $"http://{Registry.Options.Host}/v2/{Registry.PathOf(name)}/blobs/{digest}",
            LayerDigest = text,
        };
    }

    private UploadSession Session(string name, string uploadId)
        => Registry.Blobs.FindUpload(uploadId) is { } s && s.Repository == Registry.UploadKey(name) ? s : throw EcrErrors.UploadNotFound(uploadId, name, RegistryId);

    private AwsException InvalidPart(string name, string uploadId, long received, string why)
        => new("InvalidLayerPartException",
            $"The layer part is not valid for upload '{uploadId}' in the repository with name '{name}' in registry with id '{RegistryId}': {why}. lastValidByteReceived: {received - 1}");
}
