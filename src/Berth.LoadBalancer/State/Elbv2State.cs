using System.Text.Json.Serialization;
using Berth.Aws.Elbv2;
using Berth.Core;
using Berth.State;

namespace Berth.LoadBalancer.State;

/// <summary>
/// The load balancer's view of the store: one table per ELBv2 resource kind. Readers use the tables
/// directly; writers go through <see cref="DocumentState.BeginAsync"/>.
/// </summary>
/// <remarks>
/// Key layout, under elbv2/{account}/{region}/ (ids are the last segment of the ARN, 16 hex digits):
///   lb/{id}  tg/{id}  listener/{id}  rule/{id}
/// Target health is not in the store: it is what the data plane observes; its last verdicts are kept in DATA/lb-health.json (LoadBalancerOptions.HealthFile) for a restart.
/// </remarks>
public sealed class Elbv2State : DocumentState
{
    public Elbv2State(IStateStore store, BerthIdentity identity) : base(store)
    {
        Region = identity.Region;
        var prefix = $"elbv2/{identity.AccountId}/{identity.Region}/";
        LoadBalancers = Table(prefix + "lb/", Elbv2StateJsonContext.Default.StoredLoadBalancer);
        TargetGroups = Table(prefix + "tg/", Elbv2StateJsonContext.Default.StoredTargetGroup);
        Listeners = Table(prefix + "listener/", Elbv2StateJsonContext.Default.StoredListener);
        Rules = Table(prefix + "rule/", Elbv2StateJsonContext.Default.StoredRule);
        LoadBalancers.Changed += Index.ApplyLoadBalancer;
        TargetGroups.Changed += Index.ApplyTargetGroup;
        Listeners.Changed += Index.ApplyListener;
        Rules.Changed += Index.ApplyRule;
    }

    /// <summary>The region this state holds (its keys are under elbv2/{account}/{region}/).</summary>
    public string Region { get; }

    /// <summary>Raised after each store commit (the data plane, which serves every region, wakes on it).</summary>
    public event Action? Durable;

    protected override void OnDurable() => Durable?.Invoke();

    /// <summary>Names, a load balancer's listeners, a listener's rules, and which load balancers use a target group.</summary>
    public Elbv2Index Index { get; } = new();

    protected override Task BeforeLoadAsync(CancellationToken ct)
    {
        Index.Clear();
        return Task.CompletedTask;
    }

    public DocumentTable<StoredLoadBalancer> LoadBalancers { get; }
    public DocumentTable<StoredTargetGroup> TargetGroups { get; }
    public DocumentTable<StoredListener> Listeners { get; }
    public DocumentTable<StoredRule> Rules { get; }
}

/// <summary>A load balancer with its attributes and tags.</summary>
public sealed class StoredLoadBalancer
{
    [JsonPropertyName("v")] public int Version { get; set; } = 1;
    [JsonPropertyName("loadBalancer")] public required Berth.Aws.Elbv2.LoadBalancer LoadBalancer { get; set; }
    [JsonPropertyName("attributes")] public Dictionary<string, string> Attributes { get; set; } = [];
    [JsonPropertyName("tags")] public List<Tag> Tags { get; set; } = [];
}

/// <summary>A target group with its attributes, tags and registered targets.</summary>
public sealed class StoredTargetGroup
{
    [JsonPropertyName("v")] public int Version { get; set; } = 1;
    [JsonPropertyName("targetGroup")] public required TargetGroup TargetGroup { get; set; }
    [JsonPropertyName("attributes")] public Dictionary<string, string> Attributes { get; set; } = [];
    [JsonPropertyName("tags")] public List<Tag> Tags { get; set; } = [];
    /// <summary>Registered targets, port always filled in (the target group's port when the request left it out).</summary>
    [JsonPropertyName("targets")] public List<TargetDescription> Targets { get; set; } = [];
}

/// <summary>A listener; its default rule is derived from it, not stored.</summary>
public sealed class StoredListener
{
    [JsonPropertyName("v")] public int Version { get; set; } = 1;
    [JsonPropertyName("listener")] public required Listener Listener { get; set; }
    [JsonPropertyName("tags")] public List<Tag> Tags { get; set; } = [];
}

/// <summary>A non-default listener rule.</summary>
public sealed class StoredRule
{
    [JsonPropertyName("v")] public int Version { get; set; } = 1;
    [JsonPropertyName("listenerArn")] public required string ListenerArn { get; set; }
    [JsonPropertyName("rule")] public required Rule Rule { get; set; }
    [JsonPropertyName("tags")] public List<Tag> Tags { get; set; } = [];
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredLoadBalancer))]
[JsonSerializable(typeof(StoredTargetGroup))]
[JsonSerializable(typeof(StoredListener))]
[JsonSerializable(typeof(StoredRule))]
internal sealed partial class Elbv2StateJsonContext : JsonSerializerContext;
