using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// networkConfiguration, network modes and FARGATE refused as ECS refuses them, through the aws CLI: the error type
/// and ECS's message, and nothing started or registered.
/// </summary>
public sealed class NetworkBadInputTests : IAsyncLifetime
{
    private const string Good = "awsvpcConfiguration={subnets=[subnet-0a1b2c3d]}";

    private BerthServer? _server;
    private AwsCli? _aws;

    public async ValueTask InitializeAsync()
    {
        // No agent is needed: every case is refused before placement.
        _server = await BerthServer.StartAsync("server");
        _aws = new AwsCli(_server.Endpoint);
        await _aws.RunAsync("ecs", "create-cluster");
        await EcsScenario.RegisterAsync(_aws, "bridged", $$"""[{"name":"a","image":"{{EcsScenario.Image}}","memory":16}]""");
        await EcsScenario.RegisterAsync(_aws, "vpc", $$"""[{"name":"a","image":"{{EcsScenario.Image}}","memory":16}]""", "--network-mode", "awsvpc");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private async Task AssertRefusedAsync(string type, string message, params string[] args)
    {
        var r = await _aws!.TryRunAsync(args);
        Assert.True(r.ExitCode != 0, $"aws {string.Join(' ', args)} succeeded: {r.Stdout}");
        Assert.Contains($"({type})", r.Stderr, StringComparison.Ordinal);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string[]> RunTaskCases => new()
    {
        { "InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc' is specified.", ["--task-definition", "vpc"] },
        { "InvalidParameterException", "Network Configuration is not valid for the given networkMode of this task definition.", ["--task-definition", "bridged", "--network-configuration", Good] },
        { "InvalidParameterException", "The subnet ID 'subnet-xyz' is malformed", ["--task-definition", "vpc", "--network-configuration", "awsvpcConfiguration={subnets=[subnet-xyz]}"] },
        { "InvalidParameterException", "The subnet ID 'net-0a1b2c3d' is malformed", ["--task-definition", "vpc", "--network-configuration", "awsvpcConfiguration={subnets=[net-0a1b2c3d]}"] },
        { "InvalidParameterException", "subnets can not be empty.", ["--task-definition", "vpc", "--network-configuration", "awsvpcConfiguration={subnets=[]}"] },
        { "InvalidParameterException", "subnets can have at most 16 items.", ["--task-definition", "vpc", "--network-configuration",
            "awsvpcConfiguration={subnets=[" + string.Join(',', Enumerable.Range(0, 17).Select(i => $"subnet-{i:x8}")) + "]}"] },
        { "InvalidParameterException", "securityGroups can have at most 5 items.", ["--task-definition", "vpc", "--network-configuration",
            "awsvpcConfiguration={subnets=[subnet-0a1b2c3d],securityGroups=[" + string.Join(',', Enumerable.Range(0, 6).Select(i => $"sg-{i:x8}")) + "]}"] },
        { "InvalidParameterException", "The security group ID 'default' is malformed", ["--task-definition", "vpc", "--network-configuration", "awsvpcConfiguration={subnets=[subnet-0a1b2c3d],securityGroups=[default]}"] },
        { "InvalidParameterException", "Assign public IP is not supported for this launch type.", ["--task-definition", "vpc", "--network-configuration", "awsvpcConfiguration={subnets=[subnet-0a1b2c3d],assignPublicIp=ENABLED}"] },
        { "InvalidParameterException", "Task definition does not support launch_type FARGATE.", ["--task-definition", "bridged", "--launch-type", "FARGATE"] },
        // awsvpc but no task-level size: not Fargate-compatible.
        { "InvalidParameterException", "Task definition does not support launch_type FARGATE.", ["--task-definition", "vpc", "--launch-type", "FARGATE", "--network-configuration", Good] },
        { "InvalidParameterException", "Specifying both a launch type and capacity provider strategy is not supported.", ["--task-definition", "vpc", "--launch-type", "FARGATE",
            "--capacity-provider-strategy", "capacityProvider=FARGATE,weight=1", "--network-configuration", Good] },
        { "ClientException", "The specified capacity provider does not exist. Specify a valid name or ARN and try again.", ["--task-definition", "vpc", "--capacity-provider-strategy", "capacityProvider=my-asg,weight=1", "--network-configuration", Good] },
        { "InvalidParameterException", "The platform version must be null when specifying an EC2 launch type.", ["--task-definition", "vpc", "--platform-version", "1.4.0", "--network-configuration", Good] },
        { "InvalidParameterException", "launchType: Berth runs the EC2 and FARGATE launch types; EXTERNAL is not available.", ["--task-definition", "bridged", "--launch-type", "EXTERNAL"] },
    };

    [Theory]
    [MemberData(nameof(RunTaskCases))]
    public async Task RunTask_BadNetworkOrLaunch_RefusedWithEcsError(string type, string message, string[] args)
    {
        await AssertRefusedAsync(type, message, ["ecs", "run-task", .. args]);
        Assert.Empty((await _aws!.RunAsync("ecs", "list-tasks"))["taskArns"]!.AsArray());
    }

    public static TheoryData<string, string[]> RegisterCases => new()
    {
        { "No Fargate configuration exists for given values: 256 CPU, 4096 memory.", ["--requires-compatibilities", "FARGATE", "--network-mode", "awsvpc", "--cpu", "256", "--memory", "4096"] },
        { "No Fargate configuration exists for given values: 1024 CPU, 1536 memory.", ["--requires-compatibilities", "FARGATE", "--network-mode", "awsvpc", "--cpu", "1024", "--memory", "1536"] },
        { "No Fargate configuration exists for given values: 300 CPU, 1024 memory.", ["--requires-compatibilities", "FARGATE", "--network-mode", "awsvpc", "--cpu", "300", "--memory", "1024"] },
        { "Fargate only supports network mode \u2018awsvpc\u2019.", ["--requires-compatibilities", "FARGATE", "--network-mode", "bridge", "--cpu", "256", "--memory", "512"] },
        { "Fargate requires that 'cpu' be defined at the task level.", ["--requires-compatibilities", "FARGATE", "--network-mode", "awsvpc", "--memory", "512"] },
        { "Port mappings are not supported when networkMode=none", ["--network-mode", "none", "--memory", "512"] },
    };

    [Theory]
    [MemberData(nameof(RegisterCases))]
    public async Task RegisterTaskDefinition_NotFargateOrNoneWithPorts_ClientException(string message, string[] args)
    {
        await AssertRefusedAsync("ClientException", message,
            ["ecs", "register-task-definition", "--family", "refused", "--container-definitions",
             $$"""[{"name":"a","image":"{{EcsScenario.Image}}","portMappings":[{"containerPort":80}]}]""", .. args]);
        var families = await _aws!.RunAsync("ecs", "list-task-definition-families", "--family-prefix", "refused");
        Assert.Empty(families["families"]!.AsArray());
    }

    [Fact]
    public async Task CreateService_AwsvpcWithoutNetworkConfiguration_Refused()
    {
        await AssertRefusedAsync("InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            "ecs", "create-service", "--service-name", "s", "--task-definition", "vpc", "--desired-count", "1");
        await AssertRefusedAsync("InvalidParameterException", "Network Configuration is not valid for the given networkMode of this task definition.",
            "ecs", "create-service", "--service-name", "s", "--task-definition", "bridged", "--desired-count", "1", "--network-configuration", Good);
        await AssertRefusedAsync("InvalidParameterException", "Task definition does not support launch_type FARGATE.",
            "ecs", "create-service", "--service-name", "s", "--task-definition", "bridged", "--desired-count", "1", "--launch-type", "FARGATE");
        Assert.Empty((await _aws!.RunAsync("ecs", "list-services"))["serviceArns"]!.AsArray());
    }

    [Fact]
    public async Task RegisterTaskDefinition_Compatibilities_FollowNetworkModeAndSize()
    {
        var fargate = await _aws!.RunAsync("ecs", "register-task-definition", "--family", "fits", "--network-mode", "awsvpc", "--cpu", "512", "--memory", "2048",
            "--container-definitions", $$"""[{"name":"a","image":"{{EcsScenario.Image}}"}]""");
        Assert.Equal(["EC2", "FARGATE"], fargate["taskDefinition"]!["compatibilities"]!.AsArray().Select(c => c!.GetValue<string>()));
        var bridge = await _aws.RunAsync("ecs", "describe-task-definition", "--task-definition", "bridged");
        Assert.Equal(["EXTERNAL", "EC2"], bridge["taskDefinition"]!["compatibilities"]!.AsArray().Select(c => c!.GetValue<string>()));
        var vpc = await _aws.RunAsync("ecs", "describe-task-definition", "--task-definition", "vpc");
        Assert.Equal(["EC2"], vpc["taskDefinition"]!["compatibilities"]!.AsArray().Select(c => c!.GetValue<string>()));
    }
}
