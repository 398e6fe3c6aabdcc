using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Steps shared by the service scheduler scenarios. Changes go through the real aws CLI; the polling reads
/// (several a second while a deployment runs) go over raw AWS JSON 1.1, which the CLI is too slow to start for.
/// </summary>
public static partial class ServiceSteps
{
    /// <summary>
    /// The container's command: PID 1 ignores SIGTERM unless it traps it, so the trap makes every stop take
    /// milliseconds instead of the stopTimeout; `wait` is interrupted by the trapped signal.
    /// </summary>
    public static readonly string[] Sleeper = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];

    /// <summary>One essential container of the test image with stopTimeout 2; REV makes each registration a new revision.</summary>
    public static string Containers(int memory = 16, string rev = "1", string[]? command = null, JsonObject? healthCheck = null)
    {
        var c = new JsonObject
        {
            ["name"] = "app",
            ["image"] = EcsScenario.Image,
            ["memory"] = memory,
            ["essential"] = true,
            ["stopTimeout"] = 2,
            ["environment"] = new JsonArray(new JsonObject { ["name"] = "REV", ["value"] = rev }),
            ["command"] = new JsonArray([.. (command ?? Sleeper).Select(s => (JsonNode)JsonValue.Create(s))]),
        };
        if (healthCheck is not null)
        {
            c["healthCheck"] = healthCheck;
        }
        return new JsonArray(c).ToJsonString();
    }

    public static async Task<JsonNode> CallAsync(this EcsHttp http, string operation, JsonObject body)
    {
        var (status, json, text) = await http.CallAsync(operation, body.ToJsonString());
        Assert.True(status == 200 && json is not null, $"{operation} answered {status}: {text}");
        return json!;
    }

    public static async Task<JsonNode> ServiceAsync(EcsHttp http, string cluster, string service)
    {
        var r = await http.CallAsync("DescribeServices", new JsonObject { ["cluster"] = cluster, ["services"] = new JsonArray(service) });
        return r["services"]!.AsArray().Single()!;
    }

    /// <summary>
    /// Every task of the service the API still holds, live and stopped: listed by desired status RUNNING, then
    /// STOPPED (a task moving between the two lists is in the second), then described in one call, so the
    /// statuses are one read. A task created after the first list is missing — it cannot be RUNNING yet.
    /// </summary>
    public static async Task<List<JsonNode>> TasksAsync(EcsHttp http, string cluster, string service)
    {
        var arns = new List<string>();
        foreach (var desired in new[] { "RUNNING", "STOPPED" })
        {
            string? token = null;
            do
            {
                var body = new JsonObject { ["cluster"] = cluster, ["serviceName"] = service, ["desiredStatus"] = desired, ["maxResults"] = 100 };
                if (token is not null)
                {
                    body["nextToken"] = token;
                }
                var page = await http.CallAsync("ListTasks", body);
                arns.AddRange(page["taskArns"]!.AsArray().Select(a => a!.GetValue<string>()));
                token = page["nextToken"]?.GetValue<string>();
            }
            while (token is not null);
        }
        var result = new List<JsonNode>();
        foreach (var chunk in arns.Distinct(StringComparer.Ordinal).Chunk(100))
        {
            var d = await http.CallAsync("DescribeTasks", new JsonObject { ["cluster"] = cluster, ["tasks"] = new JsonArray([.. chunk.Select(a => (JsonNode)JsonValue.Create(a))]) });
            result.AddRange(d["tasks"]!.AsArray().Select(t => t!));
        }
        return result;
    }

    public static string Str(this JsonNode node, string member) => node[member]?.GetValue<string>() ?? "";

    public static bool IsLive(JsonNode task) => task.Str("lastStatus") != "STOPPED";

    /// <summary>Healthy as the scheduler counts it: RUNNING, meant to keep running, and not UNHEALTHY.</summary>
    public static bool IsHealthy(JsonNode task)
        => task.Str("lastStatus") == "RUNNING" && task.Str("desiredStatus") == "RUNNING" && task.Str("healthStatus") != "UNHEALTHY";

    /// <summary>"family:revision" of a task or service definition ARN.</summary>
    public static string Revision(string definitionArn) => definitionArn[(definitionArn.LastIndexOf('/') + 1)..];

    /// <summary>Polls until <paramref name="until"/> holds; the timeout names the last value seen.</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> read, Func<T, bool> until, string what, int seconds = 90)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var v = await read();
            if (until(v))
            {
                return v;
            }
            if (sw.Elapsed > TimeSpan.FromSeconds(seconds))
            {
                var shown = v is JsonNode j ? j.ToJsonString() : v is IEnumerable<JsonNode> list ? new JsonArray([.. list.Select(x => x.DeepClone())]).ToJsonString() : v?.ToString();
                throw new TimeoutException($"timed out after {seconds} s waiting for {what}; last seen: {shown}");
            }
            await Task.Delay(200);
        }
    }

    public static Task<JsonNode> UntilServiceAsync(EcsHttp http, string cluster, string service, Func<JsonNode, bool> until, string what, int seconds = 90)
        => UntilAsync(() => ServiceAsync(http, cluster, service), until, what, seconds);

    /// <summary>One deployment, COMPLETED, every desired task running and none pending.</summary>
    public static bool IsStable(JsonNode s)
    {
        var deployments = s["deployments"]!.AsArray();
        return deployments.Count == 1 && deployments[0]!.Str("rolloutState") == "COMPLETED"
            && s["runningCount"]!.GetValue<int>() == s["desiredCount"]!.GetValue<int>() && s["pendingCount"]!.GetValue<int>() == 0;
    }

    public static Task<JsonNode> UntilStableAsync(EcsHttp http, string cluster, string service, int seconds = 90)
        => UntilServiceAsync(http, cluster, service, IsStable, $"service {service} to be stable", seconds);

    public static IEnumerable<string> Events(JsonNode service) => service["events"]!.AsArray().Select(e => e!.Str("message"));

    /// <summary>The total N over events "(service S) has started N tasks: ..." (or "has stopped N running tasks").</summary>
    public static int Sum(IEnumerable<string> events, Regex pattern)
        => events.Select(e => pattern.Match(e)).Where(m => m.Success).Sum(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

    [GeneratedRegex(@"^\(service [\w-]+\) has started (\d+) tasks: (\(task [0-9a-f]+\) ?)+\.$")]
    public static partial Regex Started();

    [GeneratedRegex(@"^\(service [\w-]+\) has stopped (\d+) running tasks: (\(task [0-9a-f]+\) ?)+\.$")]
    public static partial Regex Stopped();

    /// <summary>Container instance ARN → ecs.availability-zone, for every instance of the cluster.</summary>
    public static async Task<Dictionary<string, JsonNode>> InstancesAsync(EcsHttp http, string cluster)
    {
        var list = await http.CallAsync("ListContainerInstances", new JsonObject { ["cluster"] = cluster });
        var arns = list["containerInstanceArns"]!.AsArray();
        if (arns.Count == 0)
        {
            return [];
        }
        var d = await http.CallAsync("DescribeContainerInstances", new JsonObject { ["cluster"] = cluster, ["containerInstances"] = arns.DeepClone() });
        return d["containerInstances"]!.AsArray().ToDictionary(i => i!.Str("containerInstanceArn"), i => i!, StringComparer.Ordinal);
    }

    public static string Zone(JsonNode instance)
        => instance["attributes"]!.AsArray().First(a => a!.Str("name") == "ecs.availability-zone")!.Str("value");

    public static int Remaining(JsonNode instance, string resource)
        => instance["remainingResources"]!.AsArray().First(r => r!.Str("name") == resource)!["integerValue"]!.GetValue<int>();

    public static int Registered(JsonNode instance, string resource)
        => instance["registeredResources"]!.AsArray().First(r => r!.Str("name") == resource)!["integerValue"]!.GetValue<int>();
}

/// <summary>One look at a service's tasks while a deployment runs.</summary>
public sealed record TaskSample(TimeSpan At, int Healthy, int Live, IReadOnlyDictionary<string, int> LiveByRevision, string Detail);

/// <summary>
/// Reads the service's tasks every <c>period</c> in the background until stopped; the invariants of a
/// deployment are checked over every sample afterwards.
/// </summary>
public sealed class TaskSampler
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly List<TaskSample> _samples = [];

    public TaskSampler(EcsHttp http, string cluster, string service, TimeSpan period)
    {
        var sw = Stopwatch.StartNew();
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                var tasks = await ServiceSteps.TasksAsync(http, cluster, service);
                var live = tasks.Where(ServiceSteps.IsLive).ToList();
                var sample = new TaskSample(sw.Elapsed, live.Count(ServiceSteps.IsHealthy), live.Count,
                    live.GroupBy(t => ServiceSteps.Revision(t.Str("taskDefinitionArn"))).ToDictionary(g => g.Key, g => g.Count()),
                    string.Join(", ", live.Select(t => $"{ServiceSteps.Revision(t.Str("taskDefinitionArn"))} {t.Str("lastStatus")}/{t.Str("desiredStatus")}/{t.Str("healthStatus")}")));
                lock (_samples)
                {
                    _samples.Add(sample);
                }
                try
                {
                    await Task.Delay(period, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        });
    }

    public async Task<IReadOnlyList<TaskSample>> StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
        lock (_samples)
        {
            return [.. _samples];
        }
    }
}

/// <summary>One <c>berth up</c> (server and local agent on real Docker) per test class, with the default cluster and its instance ready.</summary>
public abstract class LocalServerTest : IAsyncLifetime
{
    protected const string Cluster = "default";
    private BerthServer? _server;

    protected BerthServer Server => _server!;
    protected AwsCli Aws { get; private set; } = null!;
    protected EcsHttp Http { get; private set; } = null!;

    /// <summary>Extra options of <c>berth up</c> (e.g. the host policy's --allow-* for tests that need privileged or devices).</summary>
    protected virtual string[] ServerArgs => [];

    public async ValueTask InitializeAsync()
    {
        await DockerCli.RequireAsync();
        _server = await BerthServer.StartAsync("up", ServerArgs);
        Aws = new AwsCli(_server.Endpoint);
        Http = new EcsHttp(_server.Endpoint);
        await Aws.RunAsync("ecs", "create-cluster");
        await Aws.WaitForContainerInstanceAsync(Cluster, TimeSpan.FromSeconds(60));
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        GC.SuppressFinalize(this);
    }
}
