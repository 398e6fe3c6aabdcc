using System.Globalization;
using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using Berth.Registry.Lifecycle;
using Berth.Registry.Metadata;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>
/// PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy, StartLifecyclePolicyPreview,
/// GetLifecyclePolicyPreview. Policies are validated on the way in and applied by
/// <see cref="LifecyclePolicyRunner"/> at every registry sweep; a preview is evaluated when started
/// (so it is COMPLETE at once) and kept with the repository until the next one.
/// </summary>
internal sealed class LifecycleOperations(RegistryService registry, Arns arns, TimeProvider time) : EcrHandlers(registry, arns)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.PutLifecyclePolicy, Json.PutLifecyclePolicyRequest, Json.PutLifecyclePolicyResponse, PutAsync);
        s.Map(EcrOperations.GetLifecyclePolicy, Json.GetLifecyclePolicyRequest, Json.GetLifecyclePolicyResponse, (r, _) =>
        {
            var repo = Repository(r.RegistryId, r.RepositoryName!);
            return Task.FromResult(new GetLifecyclePolicyResponse
            {
                RegistryId = RegistryId,
                RepositoryName = r.RepositoryName,
                LifecyclePolicyText = repo.LifecyclePolicyText ?? throw NotFound(r.RepositoryName!),
                LastEvaluatedAt = repo.LifecyclePolicyEvaluatedAt,
            });
        });
        s.Map(EcrOperations.DeleteLifecyclePolicy, Json.DeleteLifecyclePolicyRequest, Json.DeleteLifecyclePolicyResponse, DeleteAsync);
        s.Map(EcrOperations.StartLifecyclePolicyPreview, Json.StartLifecyclePolicyPreviewRequest, Json.StartLifecyclePolicyPreviewResponse, StartPreviewAsync);
        s.Map(EcrOperations.GetLifecyclePolicyPreview, Json.GetLifecyclePolicyPreviewRequest, Json.GetLifecyclePolicyPreviewResponse, (r, _) => Task.FromResult(GetPreview(r)));
    }

    /// <summary>The policy as ECR checks it, or InvalidParameterException naming what is wrong.</summary>
    internal static LifecyclePolicy Parse(string text)
    {
        try
        {
            return LifecyclePolicy.Parse(text);
        }
        catch (LifecyclePolicyException e)
        {
            throw EcrErrors.Invalid("LifecyclePolicyText", "Lifecycle policy validation failure: " + e.Message);
        }
    }

    private async Task<PutLifecyclePolicyResponse> PutAsync(PutLifecyclePolicyRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        Parse(req.LifecyclePolicyText!);
        await UpdateAsync(req.RegistryId, name, r =>
        {
            r.LifecyclePolicyText = req.LifecyclePolicyText;
            r.LifecyclePolicyEvaluatedAt = null;
        }, ct).ConfigureAwait(false);
        return new PutLifecyclePolicyResponse { RegistryId = RegistryId, RepositoryName = name, LifecyclePolicyText = req.LifecyclePolicyText };
    }

    private async Task<DeleteLifecyclePolicyResponse> DeleteAsync(DeleteLifecyclePolicyRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        string? text = null;
        DateTimeOffset? evaluated = null;
        await UpdateAsync(req.RegistryId, name, r =>
        {
            text = r.LifecyclePolicyText ?? throw NotFound(name);
            evaluated = r.LifecyclePolicyEvaluatedAt;
            r.LifecyclePolicyText = null;
            r.LifecyclePolicyEvaluatedAt = null;
        }, ct).ConfigureAwait(false);
        return new DeleteLifecyclePolicyResponse { RegistryId = RegistryId, RepositoryName = name, LifecyclePolicyText = text, LastEvaluatedAt = evaluated };
    }

    /// <summary>Evaluates the given policy (or the repository's) against the images as they are now, and keeps the result.</summary>
    private async Task<StartLifecyclePolicyPreviewResponse> StartPreviewAsync(StartLifecyclePolicyPreviewRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        var repo = Repository(req.RegistryId, name);
        var text = req.LifecyclePolicyText ?? repo.LifecyclePolicyText ?? throw NotFound(name);
        var policy = Parse(text);
        var now = time.GetUtcNow();
        var expiring = LifecycleEvaluator.Evaluate(Registry.ImagesOf(name).Select(LifecyclePolicyRunner.ToLifecycleImage), policy, now);
        var preview = new StoredLifecyclePreview
        {
            PolicyText = text,
            EvaluatedAt = now,
            Results = expiring.Select(e => new LifecyclePolicyPreviewResult
            {
                ImageDigest = e.Image.Digest,
                ImageTags = [.. e.Image.Tags],
                ImagePushedAt = e.Image.PushedAt,
                Action = new LifecyclePolicyRuleAction { Type = ImageActionTypeValues.EXPIRE },
                AppliedRulePriority = e.Rule.Priority,
            }).ToList(),
        };
        await UpdateAsync(req.RegistryId, name, r => r.LifecyclePreview = preview, ct).ConfigureAwait(false);
        return new StartLifecyclePolicyPreviewResponse
        {
            RegistryId = RegistryId,
            RepositoryName = name,
            LifecyclePolicyText = text,
            Status = LifecyclePolicyPreviewStatusValues.COMPLETE,
        };
    }

    private GetLifecyclePolicyPreviewResponse GetPreview(GetLifecyclePolicyPreviewRequest req)
    {
        var name = req.RepositoryName!;
        var repo = Repository(req.RegistryId, name);
        var preview = repo.LifecyclePreview ?? throw new AwsException("LifecyclePolicyPreviewNotFoundException",
            $"Lifecycle policy preview does not exist for the repository with name '{name}' in the registry with id '{RegistryId}'; start one with StartLifecyclePolicyPreview");
        if (req.ImageIds is { Count: > 0 } && (req.MaxResults is not null || req.NextToken is not null))
        {
            throw EcrErrors.Invalid("maxResults", "maxResults and nextToken cannot be used together with imageIds");
        }
        IEnumerable<LifecyclePolicyPreviewResult> results = preview.Results;
        if (req.ImageIds is { Count: > 0 } ids)
        {
            results = results.Where(r => ids.Any(id =>
                (id.ImageDigest is null || id.ImageDigest == r.ImageDigest) && (id.ImageTag is null || (r.ImageTags ?? []).Contains(id.ImageTag))
                && (id.ImageDigest is not null || id.ImageTag is not null)));
        }
        results = req.Filter?.TagStatus switch
        {
            TagStatusValues.TAGGED => results.Where(r => r.ImageTags is { Count: > 0 }),
            TagStatusValues.UNTAGGED => results.Where(r => r.ImageTags is not { Count: > 0 }),
            _ => results,
        };
        var (page, next) = EcrPaging.Page(results, r => r.ImagePushedAt!.Value.UtcTicks.ToString("D19", CultureInfo.InvariantCulture) + "|" + r.ImageDigest, req.MaxResults, req.NextToken);
        return new GetLifecyclePolicyPreviewResponse
        {
            RegistryId = RegistryId,
            RepositoryName = name,
            LifecyclePolicyText = preview.PolicyText,
            Status = LifecyclePolicyPreviewStatusValues.COMPLETE,
            PreviewResults = page,
            NextToken = next,
            Summary = new LifecyclePolicyPreviewSummary { ExpiringImageTotalCount = preview.Results.Count },
        };
    }

    private AwsException NotFound(string name) => new("LifecyclePolicyNotFoundException",
        $"Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{RegistryId}'");
}
