using Berth.Aws.Protocol;

namespace Berth.LoadBalancer.Api;

/// <summary>The ELBv2 error codes Berth answers, with the model's HTTP status (400 for all of these).</summary>
internal static class Elbv2Errors
{
    public static AwsException Validation(string message) => new(AwsQueryService.ValidationError, message);
    public static AwsException LoadBalancerNotFound(string what = "One or more load balancers not found") => new("LoadBalancerNotFound", what);
    public static AwsException TargetGroupNotFound(string what = "One or more target groups not found") => new("TargetGroupNotFound", what);
    public static AwsException ListenerNotFound(string what = "One or more listeners not found") => new("ListenerNotFound", what);
    public static AwsException RuleNotFound(string what = "One or more rules not found") => new("RuleNotFound", what);
    public static AwsException DuplicateLoadBalancerName(string name) => new("DuplicateLoadBalancerName", $"A load balancer with the same name '{name}' exists, but with different settings");
    public static AwsException DuplicateTargetGroupName(string name) => new("DuplicateTargetGroupName", $"A target group with the same name '{name}' exists, but with different settings");
    public static AwsException DuplicateListener(int port) => new("DuplicateListener", $"A listener already exists on this load balancer with port {port}");
    public static AwsException PriorityInUse(int priority) => new("PriorityInUse", $"Priority '{priority}' is currently in use");
    public static AwsException ResourceInUse(string message) => new("ResourceInUse", message);
    public static AwsException InvalidTarget(string message) => new("InvalidTarget", message);
    public static AwsException OperationNotPermitted(string message) => new("OperationNotPermitted", message);
    public static AwsException InvalidConfiguration(string message) => new("InvalidConfigurationRequest", message);
    public static AwsException DuplicateTagKeys(string key) => new("DuplicateTagKeys", $"Tag key '{key}' is duplicated");
    public static AwsException TooManyTags() => new("TooManyTags", "A resource can have at most 50 tags");
    public static AwsException TargetGroupAssociationLimit(string arn) => new("TargetGroupAssociationLimit", $"The target group '{arn}' is already associated with a different load balancer");
}
