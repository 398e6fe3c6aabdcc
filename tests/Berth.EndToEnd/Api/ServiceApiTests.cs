using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>One <c>berth up</c> (server and local agent on real Docker) shared by the services API tests, started by the first test that needs it.</summary>
public sealed class ServiceApiServer : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private BerthServer? _server;
    private AwsCli? _aws;

    public string Endpoint => _server!.Endpoint;

    /// <summary>Skips without a Docker engine (fails under CI=true); starts the server once.</summary>
    public async Task<AwsCli> StartAsync()
    {
        await DockerCli.RequireAsync();
        await _gate.WaitAsync();
        try
        {
            if (_aws is null)
            {
                _server = await BerthServer.StartAsync();
                var aws = new AwsCli(_server.Endpoint);
                await aws.RunAsync("ecs", "create-cluster");
                await aws.WaitForContainerInstanceAsync("default", TimeSpan.FromSeconds(60));
                await EcsScenario.RegisterAsync(aws, "svc-web", Web("v1"));
                _aws = aws;
            }
            return _aws;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>busybox httpd on a dynamic host port; <paramref name="version"/> only makes revisions differ.</summary>
    public static string Web(string version)
        => $$"""[{"name":"web","image":"{{EcsScenario.Image}}","memory":16,"stopTimeout":2,"environment":[{"name":"VERSION","value":"{{version}}"}],"portMappings":[{"containerPort":80,"hostPort":0}],"command":["httpd","-f","-p","80","-h","/www"]}]""";

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        _gate.Dispose();
    }
}

/// <summary>
/// The services API through the real aws CLI and boto3: the shapes ECS returns (its defaults filled in,
/// what it leaves out left out), waiters, pagination, deletion and service deployments.
/// </summary>
public sealed class ServiceApiTests(ServiceApiServer fixture) : IClassFixture<ServiceApiServer>
{
    private AwsCli Aws => _aws ?? throw new InvalidOperationException("call StartAsync first");
    private AwsCli? _aws;

    private async Task StartAsync() => _aws = await fixture.StartAsync();

    /// <summary>aws ecs wait services-stable (the CLI polls every 15 s, up to 40 times); the process is bounded at 3 minutes.</summary>
    private async Task WaitStableAsync(string cluster, params string[] services)
    {
        var r = await Processes.RunAsync("aws", ["ecs", "wait", "services-stable", "--cluster", cluster, "--services", .. services], Aws.Environment, TimeSpan.FromSeconds(180));
        Assert.True(r.ExitCode == 0, $"wait services-stable failed ({r.ExitCode}): {r.Stderr}");
    }

    private async Task<JsonNode> DescribeAsync(string cluster, string service, bool tags = false)
    {
        var d = await Aws.RunAsync(["ecs", "describe-services", "--cluster", cluster, "--services", service, .. (tags ? new[] { "--include", "TAGS" } : [])]);
        return d["services"]![0]!;
    }

    private static string[] Strings(JsonNode? array) => array!.AsArray().Select(x => x!.GetValue<string>()).ToArray();

    [Fact]
    public async Task CreateService_ReturnsEcsDefaults_BecomesStable_AndOwnsExactlyItsTasks()
    {
        await StartAsync();
        var created = (await Aws.RunAsync("ecs", "create-service", "--cluster", "default", "--service-name", "web", "--task-definition", "svc-web",
            "--desired-count", "2", "--tags", "key=team,value=core"))["service"]!;

        // Every member ECS returns, with its defaults.
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:service/default/web", created["serviceArn"]!.GetValue<string>());
        Assert.Equal("web", created["serviceName"]!.GetValue<string>());
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:cluster/default", created["clusterArn"]!.GetValue<string>());
        Assert.Equal("ACTIVE", created["status"]!.GetValue<string>());
        Assert.Equal(2, created["desiredCount"]!.GetValue<int>());
        Assert.Equal(0, created["runningCount"]!.GetValue<int>());
        Assert.Equal(0, created["pendingCount"]!.GetValue<int>());
        Assert.Equal("EC2", created["launchType"]!.GetValue<string>());
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:task-definition/svc-web:1", created["taskDefinition"]!.GetValue<string>());
        var config = created["deploymentConfiguration"]!;
        Assert.Equal("""{"enable":false,"rollback":false}""", config["deploymentCircuitBreaker"]!.ToJsonString());
        Assert.Equal(200, config["maximumPercent"]!.GetValue<int>());
        Assert.Equal(100, config["minimumHealthyPercent"]!.GetValue<int>());
        Assert.Equal("[]", created["placementConstraints"]!.ToJsonString());
        Assert.Equal("[]", created["placementStrategy"]!.ToJsonString());
        Assert.Equal("[]", created["loadBalancers"]!.ToJsonString());
        Assert.Equal("[]", created["serviceRegistries"]!.ToJsonString());
        Assert.Equal("NONE", created["propagateTags"]!.GetValue<string>());
        Assert.False(created["enableECSManagedTags"]!.GetValue<bool>());
        Assert.False(created["enableExecuteCommand"]!.GetValue<bool>());
        Assert.Equal("REPLICA", created["schedulingStrategy"]!.GetValue<string>());
        Assert.Equal("""{"type":"ECS"}""", created["deploymentController"]!.ToJsonString());
        Assert.NotNull(created["createdAt"]);
        Assert.Equal("[{\"key\":\"team\",\"value\":\"core\"}]", created["tags"]!.ToJsonString());
        var deployment = created["deployments"]!.AsArray().Single()!;
        Assert.Matches("^ecs-svc/[0-9]{19}$", deployment["id"]!.GetValue<string>());
        Assert.Equal("PRIMARY", deployment["status"]!.GetValue<string>());
        Assert.Equal("IN_PROGRESS", deployment["rolloutState"]!.GetValue<string>());
        Assert.Equal(2, deployment["desiredCount"]!.GetValue<int>());
        Assert.Equal("EC2", deployment["launchType"]!.GetValue<string>());
        Assert.Equal(created["taskDefinition"]!.GetValue<string>(), deployment["taskDefinition"]!.GetValue<string>());
        Assert.EndsWith("service-deployment/default/web/" + deployment["id"]!.GetValue<string>()["ecs-svc/".Length..], created["currentServiceDeployment"]!.GetValue<string>(), StringComparison.Ordinal);
        // What ECS leaves out of a bridge-mode EC2 service.
        foreach (var absent in new[] { "networkConfiguration", "platformVersion", "platformFamily", "capacityProviderStrategy", "taskSets" })
        {
            Assert.Null(created[absent]);
        }

        await WaitStableAsync("default", "web");

        var stable = await DescribeAsync("default", "web");
        Assert.Equal(2, stable["runningCount"]!.GetValue<int>());
        Assert.Equal(0, stable["pendingCount"]!.GetValue<int>());
        var primary = stable["deployments"]!.AsArray().Single()!;
        Assert.Equal("COMPLETED", primary["rolloutState"]!.GetValue<string>());
        var events = stable["events"]!.AsArray().Select(e => e!["message"]!.GetValue<string>()).ToList();
        // One task first (it resolves the image digest the deployment runs, see VersionConsistency), then the rest.
        Assert.Contains(events, m => m.StartsWith("(service web) has started 1 tasks: (task ", StringComparison.Ordinal));
        Assert.Equal(2, ServiceSteps.Sum(events, ServiceSteps.Started()));
        Assert.Contains("(service web) has reached a steady state.", events);
        Assert.Null(stable["tags"]);
        Assert.Equal("team", (await DescribeAsync("default", "web", tags: true))["tags"]![0]!["key"]!.GetValue<string>());

        // A standalone task in the same cluster is not the service's.
        await EcsScenario.RegisterAsync(Aws, "svc-standalone", """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","300"],"stopTimeout":1}]""");
        var standalone = (await EcsScenario.RunOneAsync(Aws, "default", "svc-standalone"))["taskArn"]!.GetValue<string>();
        var owned = Strings((await Aws.RunAsync("ecs", "list-tasks", "--cluster", "default", "--service-name", "web"))["taskArns"]);
        Assert.Equal(2, owned.Length);
        Assert.DoesNotContain(standalone, owned);
        var tasks = (await Aws.RunAsync(["ecs", "describe-tasks", "--cluster", "default", "--tasks", .. owned]))["tasks"]!.AsArray();
        Assert.All(tasks, t =>
        {
            Assert.Equal("service:web", t!["group"]!.GetValue<string>());
            Assert.Equal(primary["id"]!.GetValue<string>(), t["startedBy"]!.GetValue<string>());
            Assert.Equal("RUNNING", t["lastStatus"]!.GetValue<string>());
        });
        var all = Strings((await Aws.RunAsync("ecs", "list-tasks", "--cluster", "default"))["taskArns"]);
        Assert.Contains(standalone, all);
        Assert.Superset(owned.ToHashSet(), all.ToHashSet());

        var cluster = (await Aws.RunAsync("ecs", "describe-clusters", "--clusters", "default"))["clusters"]![0]!;
        Assert.True(cluster["activeServicesCount"]!.GetValue<int>() >= 1);

        var ghost = await Aws.TryRunAsync("ecs", "list-tasks", "--cluster", "default", "--service-name", "ghost");
        Assert.NotEqual(0, ghost.ExitCode);
        Assert.Contains("ServiceNotFoundException", ghost.Stderr, StringComparison.Ordinal);
        await Aws.RunAsync("ecs", "stop-task", "--cluster", "default", "--task", standalone);
    }

    [Fact]
    public async Task DeleteService_Force_DrainsThenInactive_AndStopsItsTasks()
    {
        await StartAsync();
        await Aws.RunAsync("ecs", "create-service", "--cluster", "default", "--service-name", "doomed", "--task-definition", "svc-web", "--desired-count", "1");
        await WaitStableAsync("default", "doomed");
        var task = Strings((await Aws.RunAsync("ecs", "list-tasks", "--cluster", "default", "--service-name", "doomed"))["taskArns"]).Single();

        var refused = await Aws.TryRunAsync("ecs", "delete-service", "--cluster", "default", "--service", "doomed");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("InvalidParameterException", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal("ACTIVE", (await DescribeAsync("default", "doomed"))["status"]!.GetValue<string>());

        var deleted = (await Aws.RunAsync("ecs", "delete-service", "--cluster", "default", "--service", "doomed", "--force"))["service"]!;
        Assert.Equal("DRAINING", deleted["status"]!.GetValue<string>());
        Assert.Equal(0, deleted["desiredCount"]!.GetValue<int>());
        Assert.Equal(0, deleted["deployments"]![0]!["desiredCount"]!.GetValue<int>());
        Assert.DoesNotContain("arn:aws:ecs:us-east-1:000000000000:service/default/doomed", Strings((await Aws.RunAsync("ecs", "list-services", "--cluster", "default"))["serviceArns"]));

        var inactive = await Wait.ForAsync(async () =>
        {
            var s = await DescribeAsync("default", "doomed");
            return s["status"]!.GetValue<string>() == "INACTIVE" ? s : null;
        }, TimeSpan.FromSeconds(60), "the deleted service to become INACTIVE");
        Assert.Equal(0, inactive["runningCount"]!.GetValue<int>());
        var stopped = await EcsScenario.WaitForStatusAsync(Aws, "default", task, "STOPPED");
        Assert.Equal("ServiceSchedulerInitiated", stopped["stopCode"]!.GetValue<string>());

        // Deleting it again answers it as it is; updating it is refused.
        Assert.Equal("INACTIVE", (await Aws.RunAsync("ecs", "delete-service", "--cluster", "default", "--service", "doomed", "--force"))["service"]!["status"]!.GetValue<string>());
        var update = await Aws.TryRunAsync("ecs", "update-service", "--cluster", "default", "--service", "doomed", "--desired-count", "1");
        Assert.Contains("ServiceNotActiveException", update.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UpdateService_NewRevision_ServiceDeploymentGoesInProgressToSuccessful()
    {
        await StartAsync();
        await Aws.RunAsync("ecs", "create-service", "--cluster", "default", "--service-name", "roll", "--task-definition", "svc-web", "--desired-count", "2");
        await WaitStableAsync("default", "roll");
        var first = (await DescribeAsync("default", "roll"))["deployments"]![0]!["id"]!.GetValue<string>();
        var v2 = await EcsScenario.RegisterAsync(Aws, "svc-roll", ServiceApiServer.Web("v2"));

        // The update and the first look at its service deployment go over raw HTTP, milliseconds apart: busybox
        // starts and stops so fast that a rollout can finish within one aws CLI invocation.
        using var http = new EcsHttp(Aws.Environment["AWS_ENDPOINT_URL"]);
        var update = await http.CallAsync("UpdateService", $$"""{"cluster":"default","service":"roll","taskDefinition":"{{v2}}"}""");
        var inProgress = await http.CallAsync("ListServiceDeployments", """{"cluster":"default","service":"roll","status":["IN_PROGRESS"]}""");
        Assert.True(update.Status == 200, update.Text);
        var updated = update.Body!["service"]!;
        Assert.Equal("IN_PROGRESS", updated["deployments"]![0]!["rolloutState"]!.GetValue<string>());
        Assert.Single(inProgress.Body!["serviceDeployments"]!.AsArray());
        Assert.Equal(v2, updated["taskDefinition"]!.GetValue<string>());
        var deployments = updated["deployments"]!.AsArray();
        Assert.Equal(2, deployments.Count);
        Assert.Equal("PRIMARY", deployments[0]!["status"]!.GetValue<string>());
        Assert.Equal(v2, deployments[0]!["taskDefinition"]!.GetValue<string>());
        Assert.Equal("ACTIVE", deployments[1]!["status"]!.GetValue<string>());
        Assert.Equal(first, deployments[1]!["id"]!.GetValue<string>());
        var second = deployments[0]!["id"]!.GetValue<string>();
        string Digits(string id) => id["ecs-svc/".Length..];
        Assert.EndsWith("/roll/" + Digits(second), inProgress.Body!["serviceDeployments"]![0]!["serviceDeploymentArn"]!.GetValue<string>(), StringComparison.Ordinal);

        var listed = (await Aws.RunAsync("ecs", "list-service-deployments", "--cluster", "default", "--service", "roll"))["serviceDeployments"]!.AsArray();
        Assert.Equal(2, listed.Count);
        Assert.EndsWith("/roll/" + Digits(second), listed[0]!["serviceDeploymentArn"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.EndsWith("/roll/" + Digits(first), listed[1]!["serviceDeploymentArn"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("SUCCESSFUL", listed[1]!["status"]!.GetValue<string>());
        var arn = listed[0]!["serviceDeploymentArn"]!.GetValue<string>();
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:service-deployment/default/roll/" + Digits(second), arn);

        var during = (await Aws.RunAsync("ecs", "describe-service-deployments", "--service-deployment-arns", arn))["serviceDeployments"]!.AsArray().Single()!;
        Assert.Contains(during["status"]!.GetValue<string>(), new[] { "IN_PROGRESS", "SUCCESSFUL" });
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:service-revision/default/roll/" + Digits(first), during["sourceServiceRevisions"]!.AsArray().Single()!["arn"]!.GetValue<string>());
        Assert.Equal("arn:aws:ecs:us-east-1:000000000000:service-revision/default/roll/" + Digits(second), during["targetServiceRevision"]!["arn"]!.GetValue<string>());
        Assert.Equal(2, during["targetServiceRevision"]!["requestedTaskCount"]!.GetValue<int>());
        Assert.Equal(200, during["deploymentConfiguration"]!["maximumPercent"]!.GetValue<int>());

        await WaitStableAsync("default", "roll");

        var done = (await Aws.RunAsync("ecs", "describe-service-deployments", "--service-deployment-arns", arn, "arn:aws:ecs:us-east-1:000000000000:service-deployment/default/roll/1"))!;
        var after = done["serviceDeployments"]!.AsArray().Single()!;
        Assert.Equal("SUCCESSFUL", after["status"]!.GetValue<string>());
        Assert.NotNull(after["finishedAt"]);
        Assert.Equal(2, after["targetServiceRevision"]!["runningTaskCount"]!.GetValue<int>());
        Assert.Equal("MISSING", done["failures"]![0]!["reason"]!.GetValue<string>());
        var revision = (await Aws.RunAsync("ecs", "describe-service-revisions", "--service-revision-arns", after["targetServiceRevision"]!["arn"]!.GetValue<string>()))["serviceRevisions"]![0]!;
        Assert.Equal(v2, revision["taskDefinition"]!.GetValue<string>());

        var stable = await DescribeAsync("default", "roll");
        Assert.Equal(second, stable["deployments"]!.AsArray().Single()!["id"]!.GetValue<string>());
        var running = Strings((await Aws.RunAsync("ecs", "list-tasks", "--cluster", "default", "--service-name", "roll"))["taskArns"]);
        var described = (await Aws.RunAsync(["ecs", "describe-tasks", "--cluster", "default", "--tasks", .. running]))["tasks"]!.AsArray();
        Assert.Equal(2, described.Count);
        Assert.All(described, t => Assert.Equal(v2, t!["taskDefinitionArn"]!.GetValue<string>()));
        var successful = (await Aws.RunAsync("ecs", "list-service-deployments", "--cluster", "default", "--service", "roll", "--status", "SUCCESSFUL"))["serviceDeployments"]!.AsArray();
        Assert.Equal(2, successful.Count);
    }

    [Fact]
    public async Task Boto3_ServicesPageDescribeAndBlockClusterDeletion()
    {
        await StartAsync();
        var r = await Boto3.RunAsync("services.py", fixture.Endpoint);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = r.Json;
        var keys = Strings(o["createdKeys"]);
        foreach (var member in new[] { "serviceArn", "serviceName", "clusterArn", "status", "desiredCount", "runningCount", "pendingCount", "launchType", "taskDefinition",
            "deploymentConfiguration", "deployments", "events", "createdAt", "placementConstraints", "placementStrategy", "schedulingStrategy", "deploymentController",
            "enableECSManagedTags", "propagateTags", "loadBalancers", "serviceRegistries", "tags" })
        {
            Assert.Contains(member, keys);
        }
        Assert.DoesNotContain("networkConfiguration", keys);
        Assert.Equal("SERVICE", o["propagateTags"]!.GetValue<string>());
        Assert.Equal("svc-a", o["createdTags"]![0]!["value"]!.GetValue<string>());
        // Twelve services, five a page, in name order; ten a page without maxResults, as ECS.
        var pages = o["pages"]!.AsArray().Select(p => string.Concat(Strings(p).Select(a => a[(a.LastIndexOf('-') + 1)..]))).ToList();
        Assert.Equal(["abcde", "fghij", "kl"], pages);
        Assert.Equal(10, o["firstPage"]!.GetValue<int>());
        Assert.True(o["firstPageHasNext"]!.GetValue<bool>());
        // Twenty-one service deployments: twenty a page without maxResults, all of them once through the paginator.
        Assert.Equal(20, o["deploymentsFirstPage"]!.GetValue<int>());
        Assert.Equal(21, o["deploymentsAll"]!.GetValue<int>());
        Assert.Equal(21, o["deploymentsDistinct"]!.GetValue<int>());
        Assert.Equal(["svc-a"], Strings(o["describedNames"]));
        Assert.Equal("svc-a", o["describedTags"]![0]!["value"]!.GetValue<string>());
        Assert.False(o["plainHasTags"]!.GetValue<bool>());
        Assert.Equal("MISSING", o["failures"]![0]!["reason"]!.GetValue<string>());
        Assert.Equal(12, o["countBefore"]!.GetValue<int>());
        Assert.Equal("ClusterContainsServicesException", o["busy"]!["code"]!.GetValue<string>());
        Assert.All(Strings(o["deleted"]), s => Assert.Contains(s, new[] { "DRAINING", "INACTIVE" }));
        Assert.Equal("INACTIVE", o["again"]!.GetValue<string>());
        Assert.Empty(o["after"]!.AsArray());
        Assert.Equal(0, o["countAfter"]!.GetValue<int>());
        Assert.Equal("ServiceNotActiveException", o["updateInactive"]!["code"]!.GetValue<string>());
        Assert.Equal("INACTIVE", o["removed"]!.GetValue<string>());
    }
}
