using Berth.Aws.Elbv2;
using Berth.Aws.Protocol;

namespace Berth.LoadBalancer.Api;

/// <summary>AddTags, RemoveTags and DescribeTags on load balancers, target groups, listeners and rules.</summary>
internal sealed class TagOperations(Elbv2Context ctx)
{
    public void Map(AwsQueryService s)
    {
        var j = Elbv2JsonContext.Default;
        s.Map(Elbv2Operations.AddTags, j.AddTagsInput, j.AddTagsOutput, async (r, ct) =>
        {
            await ChangeAsync(r.ResourceArns!, tags => Elbv2Context.MergeTags(tags, r.Tags, "Tags"), ct).ConfigureAwait(false);
            return new AddTagsOutput();
        });
        s.Map(Elbv2Operations.RemoveTags, j.RemoveTagsInput, j.RemoveTagsOutput, async (r, ct) =>
        {
            await ChangeAsync(r.ResourceArns!, tags => tags.Where(t => !r.TagKeys!.Contains(t.Key!)).ToList(), ct).ConfigureAwait(false);
            return new RemoveTagsOutput();
        });
        s.Map(Elbv2Operations.DescribeTags, j.DescribeTagsInput, j.DescribeTagsOutput, (r, _) => Task.FromResult(new DescribeTagsOutput
        {
            TagDescriptions = r.ResourceArns!.Distinct(StringComparer.Ordinal).Select(a => new TagDescription { ResourceArn = a, Tags = [.. TagsOf(a)] }).ToList(),
        }));
    }

    private List<Tag> TagsOf(string arn)
    {
        if (arn.Contains(":loadbalancer/", StringComparison.Ordinal))
        {
            return ctx.RequireLoadBalancer(arn).Tags;
        }
        if (arn.Contains(":targetgroup/", StringComparison.Ordinal))
        {
            return ctx.RequireTargetGroup(arn).Value.Tags;
        }
        if (arn.Contains(":listener/", StringComparison.Ordinal))
        {
            return ctx.RequireListener(arn).Value.Tags;
        }
        if (arn.Contains(":listener-rule/", StringComparison.Ordinal) && ctx.Arns.IdOf(arn, "listener-rule/app") is { } id && ctx.State.Rules.Find(id) is { } rule)
        {
            return rule.Tags;
        }
        if (arn.Contains(":listener-rule/", StringComparison.Ordinal))
        {
            throw Elbv2Errors.RuleNotFound($"Rule '{arn}' not found");
        }
        throw Elbv2Errors.Validation($"ResourceArns: '{arn}' is not the ARN of a load balancer, target group, listener or rule.");
    }

    private async Task ChangeAsync(List<string> arns, Func<List<Tag>, List<Tag>> change, CancellationToken ct)
    {
        if (arns.Count > 20)
        {
            throw Elbv2Errors.Validation("ResourceArns: at most 20 resources per call.");
        }
        await using var tx = await ctx.State.BeginAsync(ct).ConfigureAwait(false);
        foreach (var arn in arns.Distinct(StringComparer.Ordinal))
        {
            _ = TagsOf(arn); // not found -> the resource's error, before anything is written
        }
        foreach (var arn in arns.Distinct(StringComparer.Ordinal))
        {
            var id = Elbv2Context.LastSegment(arn);
            if (arn.Contains(":loadbalancer/", StringComparison.Ordinal))
            {
                var v = ctx.State.LoadBalancers.Get(id)!;
                var copy = ctx.State.LoadBalancers.Clone(v.Value);
                copy.Tags = change(copy.Tags);
                tx.Put(ctx.State.LoadBalancers, id, copy, v.Revision);
            }
            else if (arn.Contains(":targetgroup/", StringComparison.Ordinal))
            {
                var v = ctx.State.TargetGroups.Get(id)!;
                var copy = ctx.State.TargetGroups.Clone(v.Value);
                copy.Tags = change(copy.Tags);
                tx.Put(ctx.State.TargetGroups, id, copy, v.Revision);
            }
            else if (arn.Contains(":listener/", StringComparison.Ordinal))
            {
                var v = ctx.State.Listeners.Get(id)!;
                var copy = ctx.State.Listeners.Clone(v.Value);
                copy.Tags = change(copy.Tags);
                tx.Put(ctx.State.Listeners, id, copy, v.Revision);
            }
            else
            {
                var v = ctx.State.Rules.Get(id)!;
                var copy = ctx.State.Rules.Clone(v.Value);
                copy.Tags = change(copy.Tags);
                tx.Put(ctx.State.Rules, id, copy, v.Revision);
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }
}

internal static class Elbv2Api
{
    public static AwsQueryService Build(Elbv2Context ctx, TargetGroupOperations targetGroups)
    {
        var service = new AwsQueryService(ServiceModel.Load("Elbv2"));
        new LoadBalancerOperations(ctx).Map(service);
        targetGroups.Map(service);
        new ListenerOperations(ctx).Map(service);
        new TagOperations(ctx).Map(service);
        return service;
    }
}
