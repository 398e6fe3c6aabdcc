using System.Net.Sockets;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Network modes and the FARGATE launch type on real Docker, through the aws CLI: awsvpc tasks in their own
/// namespace (pause container) with an address reachable from the host, host and none modes as Docker applies them.
/// </summary>
public sealed class NetworkModeTests : IAsyncLifetime
{
    private const string Network = "awsvpcConfiguration={subnets=[subnet-0a1b2c3d],securityGroups=[sg-0a1b2c3d],assignPublicIp=DISABLED}";

    private BerthServer? _server;
    private AwsCli? _aws;

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        _server = await BerthServer.StartAsync();
        _aws = new AwsCli(_server.Endpoint);
        await _aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private static JsonNode Container(JsonNode task, string name)
        => task["containers"]!.AsArray().First(c => c!["name"]!.GetValue<string>() == name)!;

    private static string Detail(JsonNode attachment, string name)
        => attachment["details"]!.AsArray().First(d => d!["name"]!.GetValue<string>() == name)!["value"]!.GetValue<string>();

    private static async Task<JsonNode> InspectAsync(string id)
    {
        var r = await DockerCli.RunAsync("inspect", id);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonNode.Parse(r.Stdout)![0]!;
    }

    private async Task<JsonNode> PauseOfAsync(string taskArn)
    {
        var r = await DockerCli.RunAsync("ps", "-aq", "--filter", $"label=com.amazonaws.ecs.task-arn={taskArn}",
            "--filter", "label=com.amazonaws.ecs.container-name=~internal~ecs~pause");
        var ids = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(ids.Length == 1, $"one pause container for {taskArn}, found {ids.Length}: {r.Stdout} {r.Stderr}");
        return await InspectAsync(ids[0]);
    }

    private static async Task<string> GetAsync(string url, TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        return await Wait.ForAsync(async () =>
        {
            try
            {
                return await http.GetStringAsync(new Uri(url));
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return null;
            }
        }, timeout, url);
    }

    [Fact]
    public async Task Awsvpc_TwoContainersShareLocalhost_TaskIpReachableFromHost_AttachmentReported()
    {
        // The client waits for the server on localhost: the two containers share the pause container's namespace.
        await EcsScenario.RegisterAsync(_aws!, "vpc-pair", $$"""
            [{"name":"web","image":"{{EcsScenario.Image}}","memory":32,"portMappings":[{"containerPort":8080}],"command":["httpd","-f","-p","8080","-h","/www"],"stopTimeout":2},
             {"name":"client","image":"{{EcsScenario.Image}}","memory":16,"essential":false,"dependsOn":[{"containerName":"web","condition":"START"}],
              "command":["sh","-c","for i in $(seq 1 100); do wget -q -O - http://localhost:8080/ | grep -q 'berth test image' && exit 0; sleep 0.1; done; exit 1"]}]
            """, "--network-mode", "awsvpc");
        var run = await _aws!.RunAsync("ecs", "run-task", "--task-definition", "vpc-pair", "--network-configuration", Network);
        var arn = run["tasks"]![0]!["taskArn"]!.GetValue<string>();
        // ECS shows the interface before the task has an address.
        Assert.Equal("ElasticNetworkInterface", run["tasks"]![0]!["attachments"]![0]!["type"]!.GetValue<string>());
        Assert.Equal("subnet-0a1b2c3d", Detail(run["tasks"]![0]!["attachments"]![0]!, "subnetId"));

        var task = await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "RUNNING");
        task = await Wait.ForAsync(async () =>
        {
            var t = await EcsScenario.DescribeAsync(_aws, "default", arn);
            return Container(t, "client")["lastStatus"]!.GetValue<string>() == "STOPPED" ? t : null;
        }, TimeSpan.FromSeconds(60), "the client container to finish");
        Assert.Equal(0, Container(task, "client")["exitCode"]!.GetValue<int>());

        var eni = task["attachments"]!.AsArray().Single()!;
        Assert.Equal("ElasticNetworkInterface", eni["type"]!.GetValue<string>());
        Assert.Equal("ATTACHED", eni["status"]!.GetValue<string>());
        var ip = Detail(eni, "privateIPv4Address");
        Assert.True(System.Net.IPAddress.TryParse(ip, out var parsed) && parsed.AddressFamily == AddressFamily.InterNetwork, ip);
        Assert.Matches("^eni-[0-9a-f]{17}$", Detail(eni, "networkInterfaceId"));
        Assert.Matches("^([0-9a-f]{2}:){5}[0-9a-f]{2}$", Detail(eni, "macAddress"));
        Assert.Equal("ip-" + ip.Replace('.', '-') + ".ec2.internal", Detail(eni, "privateDnsName"));
        foreach (var name in new[] { "web", "client" })
        {
            var nic = Container(task, name)["networkInterfaces"]!.AsArray().Single()!;
            Assert.Equal(eni["id"]!.GetValue<string>(), nic["attachmentId"]!.GetValue<string>());
            Assert.Equal(ip, nic["privateIpv4Address"]!.GetValue<string>());
        }
        // No host port: the port is on the task's own address.
        Assert.Empty(Container(task, "web")["networkBindings"]?.AsArray() ?? []);

        // Reachable from the host at TASKIP:PORT.
        Assert.Contains("berth test image", await GetAsync($"http://{ip}:8080/", TimeSpan.FromSeconds(20)), StringComparison.Ordinal);

        // Docker's view: the pause container on berth-awsvpc with the task's labels; the containers join it.
        var pause = await PauseOfAsync(arn);
        Assert.Equal(ip, pause["NetworkSettings"]!["Networks"]!["berth-awsvpc"]!["IPAddress"]!.GetValue<string>());
        Assert.Equal("vpc-pair", pause["Config"]!["Labels"]!["com.amazonaws.ecs.task-definition-family"]!.GetValue<string>());
        var web = await InspectAsync(Container(task, "web")["runtimeId"]!.GetValue<string>());
        Assert.Equal("container:" + pause["Id"]!.GetValue<string>(), web["HostConfig"]!["NetworkMode"]!.GetValue<string>());
        var network = JsonNode.Parse((await DockerCli.RunAsync("network", "inspect", "berth-awsvpc")).Stdout)![0]!;
        Assert.Equal("awsvpc", network["Labels"]!["berth.network"]!.GetValue<string>());

        await _aws.RunAsync("ecs", "stop-task", "--task", arn);
        var stopped = await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "STOPPED");
        Assert.Equal("DETACHED", stopped["attachments"]![0]!["status"]!.GetValue<string>());
        Assert.False((await PauseOfAsync(arn))["State"]!["Running"]!.GetValue<bool>());
    }

    [Fact]
    public async Task FargateSampleFromEcsDocs_RunsUnchangedWithLaunchTypeFargate_TwoTasksSamePort()
    {
        // The "sample-fargate" definition of the ECS developer guide (Example task definitions), with the image
        // swapped for the local test image and its Apache start-up for busybox httpd serving the same directory.
        var file = Path.Combine(_server!.DataDirectory, "sample-fargate.json");
        await File.WriteAllTextAsync(file, $$"""
            {
                "family": "sample-fargate",
                "networkMode": "awsvpc",
                "containerDefinitions": [
                    {
                        "name": "fargate-app",
                        "image": "{{EcsScenario.Image}}",
                        "portMappings": [
                            {
                                "containerPort": 80,
                                "hostPort": 80,
                                "protocol": "tcp"
                            }
                        ],
                        "essential": true,
                        "entryPoint": [
                            "sh",
                            "-c"
                        ],
                        "command": [
                            "mkdir -p /usr/local/apache2/htdocs && echo '<html> <head> <title>Amazon ECS Sample App</title> </head><body> <h1>Amazon ECS Sample App</h1> <h2>Congratulations!</h2> <p>Your application is now running on a container in Amazon ECS.</p> </body></html>' >  /usr/local/apache2/htdocs/index.html && httpd -f -p 80 -h /usr/local/apache2/htdocs"
                        ]
                    }
                ],
                "requiresCompatibilities": [
                    "FARGATE"
                ],
                "cpu": "256",
                "memory": "512"
            }
            """);
        var td = await _aws!.RunAsync("ecs", "register-task-definition", "--cli-input-json", "file://" + file);
        var compat = td["taskDefinition"]!["compatibilities"]!.AsArray().Select(c => c!.GetValue<string>()).ToList();
        Assert.Contains("FARGATE", compat);
        Assert.Contains("EC2", compat);

        // Two tasks both on port 80: awsvpc ports are the task's, not the host's, so nothing clashes.
        var run = await _aws.RunAsync("ecs", "run-task", "--task-definition", "sample-fargate", "--launch-type", "FARGATE", "--count", "2",
            "--platform-version", "LATEST", "--network-configuration", Network);
        Assert.Empty(run["failures"]!.AsArray());
        var ips = new List<string>();
        foreach (var t in run["tasks"]!.AsArray())
        {
            var task = await EcsScenario.WaitForStatusAsync(_aws, "default", t!["taskArn"]!.GetValue<string>(), "RUNNING");
            Assert.Equal("FARGATE", task["launchType"]!.GetValue<string>());
            Assert.Equal("1.4.0", task["platformVersion"]!.GetValue<string>());
            Assert.Equal("Linux", task["platformFamily"]!.GetValue<string>());
            Assert.Equal("256", task["cpu"]!.GetValue<string>());
            Assert.Equal("512", task["memory"]!.GetValue<string>());
            var ip = Wait.ForAsync(async () =>
            {
                var d = await EcsScenario.DescribeAsync(_aws, "default", t!["taskArn"]!.GetValue<string>());
                return d["attachments"]![0]!["status"]!.GetValue<string>() == "ATTACHED" ? Detail(d["attachments"]![0]!, "privateIPv4Address") : null;
            }, TimeSpan.FromSeconds(20), "the task's address");
            ips.Add(await ip);
        }
        Assert.NotEqual(ips[0], ips[1]);
        foreach (var ip in ips)
        {
            Assert.Contains("Amazon ECS Sample App", await GetAsync($"http://{ip}/", TimeSpan.FromSeconds(20)), StringComparison.Ordinal);
        }
        Assert.Equal(2, (await _aws.RunAsync("ecs", "list-tasks", "--launch-type", "FARGATE"))["taskArns"]!.AsArray().Count);
        foreach (var t in run["tasks"]!.AsArray())
        {
            await _aws.RunAsync("ecs", "stop-task", "--task", t!["taskArn"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task CapacityProviderFargateSpot_TaskReportsItsCapacityProvider()
    {
        await EcsScenario.RegisterAsync(_aws!, "spot", $$"""[{"name":"main","image":"{{EcsScenario.Image}}","command":["sleep","300"],"stopTimeout":1}]""",
            "--network-mode", "awsvpc", "--requires-compatibilities", "FARGATE", "--cpu", "256", "--memory", "1024");
        var run = await _aws!.RunAsync("ecs", "run-task", "--task-definition", "spot", "--capacity-provider-strategy", "capacityProvider=FARGATE_SPOT,weight=1",
            "--network-configuration", Network);
        var arn = run["tasks"]![0]!["taskArn"]!.GetValue<string>();
        var task = await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "RUNNING");
        Assert.Equal("FARGATE_SPOT", task["capacityProviderName"]!.GetValue<string>());
        Assert.Equal("FARGATE", task["launchType"]!.GetValue<string>());
        await _aws.RunAsync("ecs", "stop-task", "--task", arn);
    }

    [Fact]
    public async Task FargateService_NetworkConfigurationStoredAndReturned_TaskGetsAddress()
    {
        await EcsScenario.RegisterAsync(_aws!, "vpc-svc", $$"""[{"name":"web","image":"{{EcsScenario.Image}}","portMappings":[{"containerPort":80}],"command":["httpd","-f","-p","80","-h","/www"],"stopTimeout":1}]""",
            "--network-mode", "awsvpc", "--requires-compatibilities", "FARGATE", "--cpu", "256", "--memory", "512");
        var created = await _aws!.RunAsync("ecs", "create-service", "--service-name", "vpc-svc", "--task-definition", "vpc-svc", "--desired-count", "1",
            "--launch-type", "FARGATE", "--network-configuration", Network);
        var svc = created["service"]!;
        Assert.Equal("FARGATE", svc["launchType"]!.GetValue<string>());
        Assert.Equal("1.4.0", svc["platformVersion"]!.GetValue<string>());
        Assert.Equal("subnet-0a1b2c3d", svc["networkConfiguration"]!["awsvpcConfiguration"]!["subnets"]![0]!.GetValue<string>());
        Assert.Equal("sg-0a1b2c3d", svc["networkConfiguration"]!["awsvpcConfiguration"]!["securityGroups"]![0]!.GetValue<string>());
        var arn = (await Wait.ForAsync(async () =>
        {
            var l = await _aws.RunAsync("ecs", "list-tasks", "--service-name", "vpc-svc");
            return l["taskArns"]!.AsArray().Count > 0 ? l : null;
        }, TimeSpan.FromSeconds(30), "the service's task"))["taskArns"]![0]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "RUNNING");
        var ip = await Wait.ForAsync(async () =>
        {
            var d = await EcsScenario.DescribeAsync(_aws, "default", arn);
            return d["attachments"]![0]!["status"]!.GetValue<string>() == "ATTACHED" ? Detail(d["attachments"]![0]!, "privateIPv4Address") : null;
        }, TimeSpan.FromSeconds(20), "the task's address");
        Assert.Contains("berth test image", await GetAsync($"http://{ip}/", TimeSpan.FromSeconds(20)), StringComparison.Ordinal);

        // A service of an awsvpc definition refuses to lose its network configuration's subnets.
        var bad = await _aws.TryRunAsync("ecs", "update-service", "--service", "vpc-svc", "--network-configuration", "awsvpcConfiguration={subnets=[nope]}");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("InvalidParameterException", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("'nope'", bad.Stderr, StringComparison.Ordinal);
        await _aws.RunAsync("ecs", "delete-service", "--service", "vpc-svc", "--force");
    }

    [Fact]
    public async Task Awsvpc_BerthRestarts_PauseAndContainersReadoptedByLabel_AddressKept()
    {
        await EcsScenario.RegisterAsync(_aws!, "vpc-restart", $$"""[{"name":"web","image":"{{EcsScenario.Image}}","memory":16,"portMappings":[{"containerPort":80}],"command":["httpd","-f","-p","80","-h","/www"],"stopTimeout":1}]""",
            "--network-mode", "awsvpc");
        var arn = (await _aws!.RunAsync("ecs", "run-task", "--task-definition", "vpc-restart", "--network-configuration", Network))["tasks"]![0]!["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "RUNNING");
        var ip = await Wait.ForAsync(async () =>
        {
            var d = await EcsScenario.DescribeAsync(_aws, "default", arn);
            return d["attachments"]![0]!["status"]!.GetValue<string>() == "ATTACHED" ? Detail(d["attachments"]![0]!, "privateIPv4Address") : null;
        }, TimeSpan.FromSeconds(20), "the task's address");
        var pauseBefore = (await PauseOfAsync(arn))["Id"]!.GetValue<string>();

        await _server!.KillAsync();
        await _server.RestartAsync();

        // Still the same pause container (found by its labels, not recreated), still serving on the same address.
        var task = await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "RUNNING");
        Assert.Equal(ip, Detail(task["attachments"]![0]!, "privateIPv4Address"));
        Assert.Equal(pauseBefore, (await PauseOfAsync(arn))["Id"]!.GetValue<string>());
        Assert.Contains("berth test image", await GetAsync($"http://{ip}/", TimeSpan.FromSeconds(20)), StringComparison.Ordinal);
        await _aws.RunAsync("ecs", "stop-task", "--task", arn);
        var stopped = await EcsScenario.WaitForStatusAsync(_aws, "default", arn, "STOPPED");
        Assert.Equal("DETACHED", stopped["attachments"]![0]!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task HostMode_UsesHostNetwork_ReportsAndReservesItsPort()
    {
        var port = BerthServer.FreePort();
        await EcsScenario.RegisterAsync(_aws!, "hostnet", $$"""[{"name":"web","image":"{{EcsScenario.Image}}","memory":16,"portMappings":[{"containerPort":{{port}}}],"command":["httpd","-f","-p","{{port}}","-h","/www"],"stopTimeout":1}]""",
            "--network-mode", "host");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "hostnet"))["taskArn"]!.GetValue<string>();
        var task = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "RUNNING");
        var web = await InspectAsync(Container(task, "web")["runtimeId"]!.GetValue<string>());
        Assert.Equal("host", web["HostConfig"]!["NetworkMode"]!.GetValue<string>());
        var binding = Wait.ForAsync(async () =>
        {
            var d = await EcsScenario.DescribeAsync(_aws!, "default", arn);
            return Container(d, "web")["networkBindings"]?.AsArray() is { Count: > 0 } b ? b[0] : null;
        }, TimeSpan.FromSeconds(10), "the host binding");
        Assert.Equal(port, (await binding)!["hostPort"]!.GetValue<int>());
        Assert.Contains("berth test image", await GetAsync($"http://127.0.0.1:{port}/", TimeSpan.FromSeconds(20)), StringComparison.Ordinal);
        // The one host has the port taken: a second copy cannot be placed.
        var second = await _aws!.RunAsync("ecs", "run-task", "--task-definition", "hostnet");
        Assert.Empty(second["tasks"]!.AsArray());
        Assert.Equal("RESOURCE:PORTS", second["failures"]![0]!["reason"]!.GetValue<string>());
        Assert.Empty(task["attachments"]?.AsArray() ?? []);
        await _aws.RunAsync("ecs", "stop-task", "--task", arn);
    }

    [Fact]
    public async Task NoneMode_ContainerHasNoNetwork()
    {
        await EcsScenario.RegisterAsync(_aws!, "nonet", $$"""[{"name":"main","image":"{{EcsScenario.Image}}","memory":16,"command":["sh","-c","ls /sys/class/net; sleep 300"],"stopTimeout":1}]""",
            "--network-mode", "none");
        var arn = (await EcsScenario.RunOneAsync(_aws!, "default", "nonet"))["taskArn"]!.GetValue<string>();
        var task = await EcsScenario.WaitForStatusAsync(_aws!, "default", arn, "RUNNING");
        var id = Container(task, "main")["runtimeId"]!.GetValue<string>();
        var c = await InspectAsync(id);
        Assert.Equal("none", c["HostConfig"]!["NetworkMode"]!.GetValue<string>());
        var interfaces = await Wait.ForAsync(async () =>
        {
            var logs = await DockerCli.RunAsync("logs", id);
            return logs.Stdout.Trim().Length > 0 ? logs.Stdout : null;
        }, TimeSpan.FromSeconds(10), "the container's interface list");
        Assert.Equal(["lo"], interfaces.Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries));
        await _aws!.RunAsync("ecs", "stop-task", "--task", arn);
    }
}
