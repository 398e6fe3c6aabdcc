using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Metadata;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>
/// StartImageScan and DescribeImageScanFindings, answered honestly: Berth has no vulnerability scanner, so
/// a scan that was asked for (StartImageScan, or a push under scan on push) ends at once as
/// UNSUPPORTED_IMAGE with a description saying so, and no findings are ever reported. A clean result
/// would tell a CI gate that an unscanned image is safe; UNSUPPORTED_IMAGE makes it stop or decide.
/// An image nobody asked to scan answers ScanNotFoundException, as ECR does.
/// </summary>
internal sealed class ScanOperations(RegistryService registry, Arns arns) : EcrHandlers(registry, arns)
{
    public const string Unsupported = "UNSUPPORTED_IMAGE";
    public const string NoScannerDescription = "Berth has no vulnerability scanner: the image was not scanned and no findings exist.";

    /// <summary>The scan status of a stored image (null when no scan was asked for).</summary>
    public static ImageScanStatus? StatusOf(StoredManifest manifest)
        => manifest.ScanRequestedAt is null ? null : new ImageScanStatus { Status = Unsupported, Description = NoScannerDescription };

    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.StartImageScan, Json.StartImageScanRequest, Json.StartImageScanResponse, async (r, ct) =>
        {
            var name = r.RepositoryName!;
            var image = FindImage(r.RegistryId, name, r.ImageId!);
            try
            {
                await Registry.RequestScanAsync(name, image.Manifest.Digest, ct).ConfigureAwait(false);
            }
            catch (RegistryException e)
            {
                throw EcrErrors.From(e, name, RegistryId);
            }
            return new StartImageScanResponse
            {
                RegistryId = RegistryId,
                RepositoryName = name,
                ImageId = new ImageIdentifier { ImageDigest = image.Manifest.Digest, ImageTag = r.ImageId!.ImageTag },
                ImageScanStatus = new ImageScanStatus { Status = Unsupported, Description = NoScannerDescription },
            };
        });
        s.Map(EcrOperations.DescribeImageScanFindings, Json.DescribeImageScanFindingsRequest, Json.DescribeImageScanFindingsResponse, (r, _) =>
        {
            var name = r.RepositoryName!;
            var image = FindImage(r.RegistryId, name, r.ImageId!);
            var status = StatusOf(image.Manifest) ?? throw new AwsException("ScanNotFoundException",
                $"Image scan does not exist for the image with '{EcrErrors.Show(r.ImageId!)}' in the repository with name '{name}' in the registry with id '{RegistryId}'");
            EcrPaging.Page(Array.Empty<string>(), x => x, r.MaxResults, r.NextToken); // a bad nextToken is still refused
            return Task.FromResult(new DescribeImageScanFindingsResponse
            {
                RegistryId = RegistryId,
                RepositoryName = name,
                ImageId = new ImageIdentifier { ImageDigest = image.Manifest.Digest, ImageTag = r.ImageId!.ImageTag },
                ImageScanStatus = status,
            });
        });
    }
}
