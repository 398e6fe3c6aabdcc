using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// taskRoleArn on a real agent and Docker with <c>berth up --auth sigv4</c>: a container reads its role credentials
/// with busybox wget from AWS_CONTAINER_CREDENTIALS_FULL_URI (its AWS_CONTAINER_AUTHORIZATION_TOKEN in the
/// Authorization header), boto3 on the host calls ECS with exactly those, and botocore's own container provider
/// finds them from the container's variables. A tampered token, another task's token or secret, another
/// container's authorization token and a stopped task's credentials are refused.
/// </summary>
/// <remarks>
/// The agent adds 169.254.170.2/32 to <c>lo</c> when the host lacks it (root); the test leaves it there: it routes
/// nothing else, other agents on the host use it too, and it is what ECS hosts carry as well.
/// </remarks>
public sealed partial class TaskRoleCredentialsTests : IAsyncLifetime
{
    private const string Role = "arn:aws:iam::000000000000:role/app-role";

    // Prints the variables, then the credentials document on one line between markers, then waits to be stopped.
    private const string Reader = "echo \"uri=$AWS_CONTAINER_CREDENTIALS_FULL_URI\"; echo \"=== creds\"; wget -qO- --header \"Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN\" \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\"; echo; echo \"=== end\"; sleep 300";

    private static readonly string ReaderJson = JsonValue.Create(Reader).ToJsonString();

    private BerthServer _server = null!;
    private AwsCli _aws = null!;

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        var data = Path.Combine(Path.GetTempPath(), "berth-e2e-" + Guid.NewGuid().ToString("N"));
        var created = await BerthServer.RunCliAsync("credentials", "create", "--data", data, "--name", "admin");
        Assert.True(created.ExitCode == 0, created.Stdout + created.Stderr);
        _server = await BerthServer.StartWithDataAsync(data, "up", "--auth", "sigv4");
        _aws = new AwsCli(_server.Endpoint);
        _aws.Environment["AWS_ACCESS_KEY_ID"] = KeyLine().Match(created.Stdout).Groups[1].Value;
        _aws.Environment["AWS_SECRET_ACCESS_KEY"] = SecretLine().Match(created.Stdout).Groups[1].Value;
        await _aws.RunAsync("ecs", "create-cluster");
        await _aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    /// <summary>Runs <paramref name="family"/>; returns the task, its reader container's id and the credentials JSON it printed.</summary>
    private async Task<(string TaskArn, string ContainerId, JsonNode Credentials)> RunReaderAsync(string family, params string[] runArgs)
    {
        var task = (await _aws.RunAsync(["ecs", "run-task", "--cluster", "default", "--task-definition", family, .. runArgs]))["tasks"]![0]!;
        var arn = task["taskArn"]!.GetValue<string>();
        var running = await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "RUNNING", 90);
        var id = running["containers"]![0]!["runtimeId"]!.GetValue<string>();
        var text = await Wait.ForAsync(async () =>
        {
            var logs = await DockerCli.RunAsync("logs", id);
            return logs.Stdout.Contains("=== end", StringComparison.Ordinal) ? logs.Stdout : null;
        }, TimeSpan.FromSeconds(60), $"the reader of {family} to print its credentials");
        var between = text[(text.IndexOf("=== creds", StringComparison.Ordinal) + "=== creds".Length)..text.IndexOf("=== end", StringComparison.Ordinal)].Trim();
        Assert.StartsWith("{", between, StringComparison.Ordinal);
        Assert.Matches(@"uri=http://169\.254\.170\.2:\d+/v2/credentials/[0-9a-f]+-[0-9a-f]{16}\n", text);
        return (arn, id, JsonNode.Parse(between)!);
    }

    private static async Task<Dictionary<string, string>> EnvOfAsync(string containerId)
    {
        var r = await DockerCli.RunAsync("inspect", containerId, "--format", "{{json .Config.Env}}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonNode.Parse(r.Stdout)!.AsArray().Select(e => e!.GetValue<string>().Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
    }

    [Fact]
    public async Task BridgeTask_ReadsItsRoleCredentials_Boto3UsesThem_ForgedOrForeignOnesRefused()
    {
        await EcsScenario.RegisterAsync(_aws, "role-app", $$"""
            [{"name":"reader","image":"{{EcsScenario.Image}}","memory":32,"command":["sh","-c",{{ReaderJson}}],"stopTimeout":1}]
            """, "--task-role-arn", Role);
        await EcsScenario.RegisterAsync(_aws, "role-other", $$"""
            [{"name":"reader","image":"{{EcsScenario.Image}}","memory":32,"command":["sh","-c",{{ReaderJson}}],"stopTimeout":1}]
            """, "--task-role-arn", "other-role");
        await EcsScenario.RegisterAsync(_aws, "no-role", $$"""
            [{"name":"plain","image":"{{EcsScenario.Image}}","memory":16,"command":["sleep","300"],"stopTimeout":1}]
            """);

        var (arn, id, creds) = await RunReaderAsync("role-app");
        var (_, otherId, other) = await RunReaderAsync("role-other");

        // The ECS credentials endpoint's document.
        Assert.Equal(Role, creds["RoleArn"]!.GetValue<string>());
        Assert.Matches("^ASIA[A-Z2-7]{16}$", creds["AccessKeyId"]!.GetValue<string>());
        Assert.Equal(40, creds["SecretAccessKey"]!.GetValue<string>().Length);
        var expiration = DateTimeOffset.Parse(creds["Expiration"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expiration - DateTimeOffset.UtcNow, TimeSpan.FromHours(5.9), TimeSpan.FromHours(6.1));
        Assert.Equal("other-role", other["RoleArn"]!.GetValue<string>());
        Assert.NotEqual(creds["AccessKeyId"]!.GetValue<string>(), other["AccessKeyId"]!.GetValue<string>());

        var env = await EnvOfAsync(id);
        var otherEnv = await EnvOfAsync(otherId);
        Assert.False(env.ContainsKey("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
        var uri = env["AWS_CONTAINER_CREDENTIALS_FULL_URI"];
        var token = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"];

        var r = await Boto3.RunWithEnvAsync("task_role_credentials.py", _server.Endpoint, new Dictionary<string, string>
        {
            ["CREDS"] = creds.ToJsonString(),
            ["OTHER_CREDS"] = other.ToJsonString(),
            ["FULL_URI"] = uri,
            ["AUTH_TOKEN"] = token,
        });
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var result = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("ok", result["exact"]!.GetValue<string>());
        Assert.Equal("UnrecognizedClientException", result["tampered_token"]!.GetValue<string>());
        Assert.Equal("UnrecognizedClientException", result["no_token"]!.GetValue<string>());
        Assert.Equal("UnrecognizedClientException", result["other_tasks_token"]!.GetValue<string>());
        Assert.Equal("InvalidSignatureException", result["other_tasks_secret"]!.GetValue<string>());
        Assert.Equal("container-role", result["provider_method"]!.GetValue<string>());
        Assert.StartsWith("ASIA", result["provider_key"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("ok", result["provider_call"]!.GetValue<string>());
        Assert.NotEqual("accepted", result["provider_wrong_token"]!.GetValue<string>());

        // The endpoint itself, from the host (169.254.170.2 is on lo): only the container's own token is accepted.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        async Task<(int Status, string Body)> GetAsync(string url, string? authorization)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }
            using var response = await http.SendAsync(request);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        var own = await GetAsync(uri, token);
        Assert.Equal(200, own.Status);
        Assert.Equal(Role, JsonNode.Parse(own.Body)!["RoleArn"]!.GetValue<string>());
        var foreignToken = await GetAsync(uri, otherEnv["AWS_CONTAINER_AUTHORIZATION_TOKEN"]);
        Assert.Equal(403, foreignToken.Status);
        Assert.DoesNotContain("SecretAccessKey", foreignToken.Body, StringComparison.Ordinal);
        var missing = await GetAsync(uri, null);
        Assert.Equal(400, missing.Status);
        Assert.DoesNotContain("SecretAccessKey", missing.Body, StringComparison.Ordinal);
        var unknown = await GetAsync(uri[..uri.LastIndexOf('-')] + "-0000000000000000", token);
        Assert.Equal(400, unknown.Status);
        Assert.Contains("InvalidIdInRequest", unknown.Body, StringComparison.Ordinal);

        // A task without a role gets no credentials variables.
        var plain = (await _aws.RunAsync("ecs", "run-task", "--cluster", "default", "--task-definition", "no-role"))["tasks"]![0]!["taskArn"]!.GetValue<string>();
        var plainTask = await EcsScenario.WaitForStatusAsync(_aws, "default", plain, "RUNNING", 90);
        var plainEnv = await EnvOfAsync(plainTask["containers"]![0]!["runtimeId"]!.GetValue<string>());
        Assert.False(plainEnv.ContainsKey("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
        Assert.True(plainEnv.ContainsKey("ECS_CONTAINER_METADATA_URI_V4"));

        // Stopped: its credentials stop working at once (ECS's agent forgets them; the signed token would run 6 h).
        await _aws.RunAsync("ecs", "stop-task", "--cluster", "default", "--task", arn);
        await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "STOPPED", 60);
        var stopped = await Boto3.RunWithEnvAsync("task_role_credentials.py", _server.Endpoint, new Dictionary<string, string>
        {
            ["CREDS"] = creds.ToJsonString(),
            ["OTHER_CREDS"] = other.ToJsonString(),
            ["FULL_URI"] = otherEnv["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            ["AUTH_TOKEN"] = otherEnv["AWS_CONTAINER_AUTHORIZATION_TOKEN"],
        });
        Assert.True(stopped.ExitCode == 0, stopped.Stdout + stopped.Stderr);
        var after = JsonNode.Parse(stopped.Stdout)!;
        Assert.Equal("ExpiredTokenException", after["exact"]!.GetValue<string>());
        Assert.Equal("ok", after["provider_call"]!.GetValue<string>()); // the other task still runs
    }

    [Fact]
    public async Task AwsvpcTask_WithTaskRoleOverride_ReachesTheEndpoint_AndGetsTheOverridingRole()
    {
        await EcsScenario.RegisterAsync(_aws, "role-vpc", $$"""
            [{"name":"reader","image":"{{EcsScenario.Image}}","memory":32,"command":["sh","-c",{{ReaderJson}}],"stopTimeout":1}]
            """, "--task-role-arn", Role, "--network-mode", "awsvpc");
        const string overriding = "arn:aws:iam::000000000000:role/service-role/override-role";
        var (arn, id, creds) = await RunReaderAsync("role-vpc",
            "--network-configuration", "awsvpcConfiguration={subnets=[subnet-0a1b2c3d]}",
            "--overrides", $$"""{"taskRoleArn":"{{overriding}}"}""");
        Assert.Equal(overriding, creds["RoleArn"]!.GetValue<string>());
        var described = await EcsScenario.DescribeAsync(_aws, "default", arn);
        Assert.Equal(overriding, described["overrides"]!["taskRoleArn"]!.GetValue<string>());
        Assert.Equal("awsvpc", (await _aws.RunAsync("ecs", "describe-task-definition", "--task-definition", "role-vpc"))["taskDefinition"]!["networkMode"]!.GetValue<string>());

        // The credentials work against ECS, from the host, as the awsvpc container read them and through botocore's provider.
        var env = await EnvOfAsync(id);
        var r = await Boto3.RunWithEnvAsync("task_role_credentials.py", _server.Endpoint, new Dictionary<string, string>
        {
            ["CREDS"] = creds.ToJsonString(),
            ["OTHER_CREDS"] = creds.ToJsonString(),
            ["FULL_URI"] = env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            ["AUTH_TOKEN"] = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"],
        });
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Equal("ok", JsonNode.Parse(r.Stdout)!["exact"]!.GetValue<string>());
        Assert.Equal("ok", JsonNode.Parse(r.Stdout)!["provider_call"]!.GetValue<string>());

        var bad = await _aws.TryRunAsync("ecs", "run-task", "--cluster", "default", "--task-definition", "role-vpc",
            "--network-configuration", "awsvpcConfiguration={subnets=[subnet-0a1b2c3d]}", "--overrides", """{"taskRoleArn":"not a role"}""");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("(InvalidParameterException)", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("overrides.taskRoleArn", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RegisterTaskDefinition_RefusesBadRoles_AndFargateAwslogsWithoutExecutionRole()
    {
        var containers = $$$$"""[{"name":"app","image":"{{{{EcsScenario.Image}}}}","memory":32,"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"g","awslogs-region":"us-east-1","awslogs-stream-prefix":"p"}}}]""";
        string[] fargate = ["--requires-compatibilities", "FARGATE", "--network-mode", "awsvpc", "--cpu", "256", "--memory", "512"];
        var refused = await _aws.TryRunAsync(["ecs", "register-task-definition", "--family", "fg-logs", "--container-definitions", containers, .. fargate]);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("(ClientException)", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("Fargate requires task definition to have execution role ARN to support log driver awslogs.", refused.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("fg-logs", (await _aws.RunAsync("ecs", "list-task-definitions")).ToJsonString(), StringComparison.Ordinal);

        var accepted = await _aws.RunAsync(["ecs", "register-task-definition", "--family", "fg-logs", "--container-definitions", containers, .. fargate,
            "--execution-role-arn", "arn:aws:iam::000000000000:role/ecsTaskExecutionRole"]);
        Assert.Equal("arn:aws:iam::000000000000:role/ecsTaskExecutionRole", accepted["taskDefinition"]!["executionRoleArn"]!.GetValue<string>());

        var plain = $$"""[{"name":"app","image":"{{EcsScenario.Image}}","memory":32}]""";
        foreach (var (member, value) in new[] { ("--task-role-arn", "arn:aws:iam::000000000000:user/bob"), ("--execution-role-arn", "has space") })
        {
            var bad = await _aws.TryRunAsync("ecs", "register-task-definition", "--family", "bad-role", "--container-definitions", plain, member, value);
            Assert.NotEqual(0, bad.ExitCode);
            Assert.Contains("(ClientException)", bad.Stderr, StringComparison.Ordinal);
            Assert.Contains(member == "--task-role-arn" ? "taskRoleArn" : "executionRoleArn", bad.Stderr, StringComparison.Ordinal);
        }
    }

    [GeneratedRegex(@"AccessKeyId:\s+(AKIA[A-Z2-7]{16})")]
    private static partial Regex KeyLine();

    [GeneratedRegex(@"SecretAccessKey:\s+(\S{40})")]
    private static partial Regex SecretLine();
}
