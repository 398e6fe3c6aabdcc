using System.Text.Json;
using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Berth.Core;
using static Berth.Registry.Ecr.EcrApi;

namespace Berth.Registry.Ecr;

/// <summary>
/// SetRepositoryPolicy, GetRepositoryPolicy, DeleteRepositoryPolicy: the repository's IAM-style policy,
/// checked for shape and stored as text. Berth does not enforce it (there are no IAM principals here).
/// </summary>
internal sealed class PolicyOperations(RegistryService registry, Arns arns) : EcrHandlers(registry, arns)
{
    public void Map(AwsJsonService s)
    {
        s.Map(EcrOperations.SetRepositoryPolicy, Json.SetRepositoryPolicyRequest, Json.SetRepositoryPolicyResponse, SetAsync);
        s.Map(EcrOperations.GetRepositoryPolicy, Json.GetRepositoryPolicyRequest, Json.GetRepositoryPolicyResponse, (r, _) =>
        {
            var repo = Repository(r.RegistryId, r.RepositoryName!);
            return Task.FromResult(new GetRepositoryPolicyResponse
            {
                RegistryId = RegistryId,
                RepositoryName = r.RepositoryName,
                PolicyText = repo.PolicyText ?? throw NotFound(r.RepositoryName!),
            });
        });
        s.Map(EcrOperations.DeleteRepositoryPolicy, Json.DeleteRepositoryPolicyRequest, Json.DeleteRepositoryPolicyResponse, DeleteAsync);
    }

    private async Task<SetRepositoryPolicyResponse> SetAsync(SetRepositoryPolicyRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        Repository(req.RegistryId, name);
        Validate(req.PolicyText!);
        await UpdateAsync(req.RegistryId, name, r => r.PolicyText = req.PolicyText, ct).ConfigureAwait(false);
        return new SetRepositoryPolicyResponse { RegistryId = RegistryId, RepositoryName = name, PolicyText = req.PolicyText };
    }

    private async Task<DeleteRepositoryPolicyResponse> DeleteAsync(DeleteRepositoryPolicyRequest req, CancellationToken ct)
    {
        var name = req.RepositoryName!;
        string? old = null;
        await UpdateAsync(req.RegistryId, name, r =>
        {
            old = r.PolicyText ?? throw NotFound(name);
            r.PolicyText = null;
        }, ct).ConfigureAwait(false);
        return new DeleteRepositoryPolicyResponse { RegistryId = RegistryId, RepositoryName = name, PolicyText = old };
    }

    private AwsException NotFound(string name) => new("RepositoryPolicyNotFoundException",
        $"Repository policy does not exist for the repository with name '{name}' in the registry with id '{RegistryId}'");

    /// <summary>
    /// A policy document: a JSON object with an optional Version (2012-10-17 or 2008-10-17) and a Statement
    /// (one statement or a non-empty list), each with Effect Allow or Deny and an Action or NotAction.
    /// </summary>
    internal static void Validate(string text, string field = "PolicyText", string kind = "repository")
    {
        AwsException Bad(string why) => EcrErrors.Invalid(field, $"Invalid {kind} policy provided: " + why);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException)
        {
            throw Bad("the policy is not valid JSON");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Bad("the policy must be a JSON object");
            }
            if (root.TryGetProperty("Version", out var version) && (version.ValueKind != JsonValueKind.String || version.GetString() is not ("2012-10-17" or "2008-10-17")))
            {
                throw Bad("Version must be \"2012-10-17\" or \"2008-10-17\"");
            }
            if (!root.TryGetProperty("Statement", out var statement))
            {
                throw Bad("the policy has no Statement");
            }
            var statements = statement.ValueKind switch
            {
                JsonValueKind.Array => statement.EnumerateArray().ToList(),
                JsonValueKind.Object => [statement],
                _ => throw Bad("Statement must be an object or a list of objects"),
            };
            if (statements.Count == 0)
            {
                throw Bad("Statement is empty");
            }
            for (var i = 0; i < statements.Count; i++)
            {
                var st = statements[i];
                if (st.ValueKind != JsonValueKind.Object)
                {
                    throw Bad($"Statement[{i}] must be an object");
                }
                if (!st.TryGetProperty("Effect", out var effect) || effect.ValueKind != JsonValueKind.String || effect.GetString() is not ("Allow" or "Deny"))
                {
                    throw Bad($"Statement[{i}].Effect must be \"Allow\" or \"Deny\"");
                }
                if (!st.TryGetProperty("Action", out _) && !st.TryGetProperty("NotAction", out _))
                {
                    throw Bad($"Statement[{i}] needs an Action or NotAction");
                }
            }
        }
    }
}
