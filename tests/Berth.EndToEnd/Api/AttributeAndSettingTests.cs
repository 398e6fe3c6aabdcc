using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>Custom attributes feeding the cluster query language, and account settings, through the aws CLI.</summary>
public sealed class AttributeAndSettingTests
{
    [Fact]
    public async Task PutAttributes_CustomAttribute_FiltersInstancesAndCanBeDeleted()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster");
        var ci = await aws.RunAsync("ecs", "register-container-instance", "--total-resources",
            "name=CPU,type=INTEGER,integerValue=1024", "name=MEMORY,type=INTEGER,integerValue=512");
        var arn = ci["containerInstance"]!["containerInstanceArn"]!.GetValue<string>();

        await aws.RunAsync("ecs", "put-attributes", "--attributes", $"name=stack,value=prod,targetId={arn}");
        var listed = await aws.RunAsync("ecs", "list-attributes", "--target-type", "container-instance", "--attribute-name", "stack");
        Assert.Equal("prod", listed["attributes"]![0]!["value"]!.GetValue<string>());
        Assert.Single((await aws.RunAsync("ecs", "list-container-instances", "--filter", "attribute:stack == prod"))["containerInstanceArns"]!.AsArray());
        Assert.Empty((await aws.RunAsync("ecs", "list-container-instances", "--filter", "attribute:stack == dev"))["containerInstanceArns"]!.AsArray());

        await aws.RunAsync("ecs", "delete-attributes", "--attributes", $"name=stack,targetId={arn}");
        Assert.Empty((await aws.RunAsync("ecs", "list-attributes", "--target-type", "container-instance", "--attribute-name", "stack"))["attributes"]!.AsArray());

        var missing = await aws.TryRunAsync("ecs", "put-attributes", "--attributes", "name=x,value=y,targetId=nope");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("TargetNotFoundException", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AccountSettings_PutListDelete_EffectiveValueFallsBackToDefault()
    {
        await using var server = await BerthServer.StartAsync("server");
        var aws = new AwsCli(server.Endpoint);
        string Effective(System.Text.Json.Nodes.JsonNode n) => n["settings"]![0]!["value"]!.GetValue<string>();

        Assert.Equal("disabled", Effective(await aws.RunAsync("ecs", "list-account-settings", "--effective-settings", "--name", "containerInsights")));
        await aws.RunAsync("ecs", "put-account-setting-default", "--name", "containerInsights", "--value", "enhanced");
        Assert.Equal("enhanced", Effective(await aws.RunAsync("ecs", "list-account-settings", "--effective-settings", "--name", "containerInsights")));
        await aws.RunAsync("ecs", "put-account-setting", "--name", "containerInsights", "--value", "enabled");
        Assert.Equal("enabled", Effective(await aws.RunAsync("ecs", "list-account-settings", "--effective-settings", "--name", "containerInsights")));
        await aws.RunAsync("ecs", "delete-account-setting", "--name", "containerInsights");
        Assert.Equal("enhanced", Effective(await aws.RunAsync("ecs", "list-account-settings", "--effective-settings", "--name", "containerInsights")));
    }
}
