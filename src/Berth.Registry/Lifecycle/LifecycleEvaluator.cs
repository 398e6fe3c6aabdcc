namespace Berth.Registry.Lifecycle;

/// <summary>An image as lifecycle rules see it.</summary>
/// <param name="ReferencedByIndex">an index (manifest list) of the repository lists it: ECR never expires such an image</param>
public sealed record LifecycleImage(string Digest, IReadOnlyList<string> Tags, DateTimeOffset PushedAt, bool ReferencedByIndex = false);

/// <summary>An image a policy expires, and the rule that expires it.</summary>
public sealed record LifecycleExpiry(LifecycleImage Image, LifecycleRule Rule);

/// <summary>
/// Lifecycle policy evaluation as ECR documents it, as a pure function of the images, the policy and the time:
/// <list type="bullet">
/// <item>rules apply in rulePriority order; each identifies the images meeting its tagging requirements;</item>
/// <item>imageCountMoreThan keeps the newest countNumber identified images (by pushedAt) and marks the rest;
///   sinceImagePushed marks identified images pushed more than countNumber days before <c>now</c>;</item>
/// <item>a rule never marks an image a higher-priority rule identified (marked or kept), but such images
///   still count when it ranks its images ("can still identify them as if they haven't been expired");</item>
/// <item>so an image is expired by at most one rule; an image an index lists is never expired.</item>
/// </list>
/// </summary>
public static class LifecycleEvaluator
{
    /// <returns>the expiring images, oldest first</returns>
    public static IReadOnlyList<LifecycleExpiry> Evaluate(IEnumerable<LifecycleImage> images, LifecyclePolicy policy, DateTimeOffset now)
    {
        var candidates = images.Where(i => !i.ReferencedByIndex).ToList();
        var identified = new HashSet<string>(StringComparer.Ordinal);
        var expiring = new List<LifecycleExpiry>();
        foreach (var rule in policy.Rules)
        {
            var selected = candidates.Where(i => rule.Selects(i.Tags)).ToList();
            IEnumerable<LifecycleImage> marked = rule.CountType == LifecycleRule.ImageCountMoreThan
                ? selected.OrderByDescending(i => i.PushedAt).ThenByDescending(i => i.Digest, StringComparer.Ordinal).Skip(rule.CountNumber)
                : selected.Where(i => i.PushedAt < now - TimeSpan.FromDays(rule.CountNumber));
            foreach (var image in marked)
            {
                if (!identified.Contains(image.Digest))
                {
                    expiring.Add(new LifecycleExpiry(image, rule));
                }
            }
            identified.UnionWith(selected.Select(i => i.Digest));
        }
        return expiring.OrderBy(e => e.Image.PushedAt).ThenBy(e => e.Image.Digest, StringComparer.Ordinal).ToList();
    }
}
