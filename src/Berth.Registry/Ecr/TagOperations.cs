using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>TagResource, UntagResource, ListTagsForResource on repository ARNs (arn:aws:ecr:REGION:ACCOUNT:repository/NAME).</summary>
internal sealed class TagOperations(RegistryService registry, Arns arns) : EcrHandlers(registry, arns)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.TagResource, Json.TagResourceRequest, Json.TagResourceResponse, async (r, ct) =>
        {
            var name = RepositoryOf(r.ResourceArn!);
            EcrTags.Validate(r.Tags);
            await UpdateAsync(null, name, repo => repo.Tags = EcrTags.Merge(repo.Tags, r.Tags!), ct).ConfigureAwait(false);
            return new TagResourceResponse();
        });
        s.Map(EcrOperations.UntagResource, Json.UntagResourceRequest, Json.UntagResourceResponse, async (r, ct) =>
        {
            var name = RepositoryOf(r.ResourceArn!);
            var remove = new HashSet<string>(r.TagKeys!, StringComparer.Ordinal);
            await UpdateAsync(null, name, repo =>
            {
                var left = (repo.Tags ?? []).Where(t => !remove.Contains(t.Key ?? "")).ToList();
                repo.Tags = left.Count > 0 ? left : null;
            }, ct).ConfigureAwait(false);
            return new UntagResourceResponse();
        });
        s.Map(EcrOperations.ListTagsForResource, Json.ListTagsForResourceRequest, Json.ListTagsForResourceResponse, (r, _) =>
        {
            var repo = Repository(null, RepositoryOf(r.ResourceArn!));
            return Task.FromResult(new ListTagsForResourceResponse { Tags = repo.Tags ?? [] });
        });
    }

    /// <summary>The repository name an ARN of this registry names; InvalidParameterException for anything else.</summary>
    private string RepositoryOf(string arn)
    {
        if (!Arns.TryParse(arn, out var p) || p.Service != "ecr" || p.ResourceType != "repository")
        {
            throw EcrErrors.Invalid("resourceArn", $"'{arn}' is not an ECR repository ARN (arn:aws:ecr:REGION:ACCOUNT:repository/NAME)");
        }
        if (p.Account != RegistryId || p.Region != Arns.Identity.Region)
        {
            throw EcrErrors.RepositoryNotFound(p.Path, p.Account);
        }
        Repository(null, p.Path);
        return p.Path;
    }
}
