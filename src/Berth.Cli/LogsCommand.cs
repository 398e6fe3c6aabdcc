using System.CommandLine;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Berth.Cli;

/// <summary>
/// <c>berth logs TASK</c>: a task's awslogs output read through Berth's CloudWatch Logs API (GetLogEvents), each line
/// prefixed with its container's name in the container's colour; <c>--follow</c> polls until the task has stopped.
/// </summary>
internal static class LogsCommand
{
    private static readonly Color[] Palette = [Color.Aqua, Color.Yellow, Color.Fuchsia, Color.Lime, Color.Orange1, Color.DodgerBlue1, Color.Red, Color.MediumPurple];
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    private const int QuietPollsAfterStop = 3;

    public static Command Create()
    {
        var task = new Argument<string>("task") { Description = "The task's id or ARN." };
        var cluster = new Option<string>("--cluster") { Description = "The task's cluster (default: default).", DefaultValueFactory = _ => "default" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines until the task stops." };
        var endpoint = new Option<string>("--endpoint")
        {
            Description = "Berth's endpoint (env BERTH_ENDPOINT; default http://127.0.0.1:4566).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("BERTH_ENDPOINT") is { Length: > 0 } e ? e : "http://127.0.0.1:4566",
        };
        var cmd = new Command("logs", "Print a task's container output (awslogs) from Berth's CloudWatch Logs API.") { task, cluster, follow, endpoint };
        cmd.SetAction((p, ct) => RunAsync(p.GetValue(task)!, p.GetValue(cluster)!, p.GetValue(follow), p.GetValue(endpoint)!, ct));
        return cmd;
    }

    private static async Task<int> RunAsync(string taskRef, string cluster, bool follow, string endpoint, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = new Uri(endpoint), Timeout = TimeSpan.FromSeconds(30) };
        var api = new Api(http);
        var streams = new List<Source>();
        try
        {
            var task = await DescribeTaskAsync(api, cluster, taskRef, ct).ConfigureAwait(false);
            if (task is null)
            {
                await Console.Error.WriteLineAsync($"berth logs: task {taskRef} not found in cluster {cluster}.").ConfigureAwait(false);
                return 1;
            }
            var taskArn = task["taskArn"]!.GetValue<string>();
            var taskId = taskArn[(taskArn.LastIndexOf('/') + 1)..];
            var def = (await api.CallAsync("AmazonEC2ContainerServiceV20141113.DescribeTaskDefinition",
                new JsonObject { ["taskDefinition"] = task["taskDefinitionArn"]!.GetValue<string>() }, ct).ConfigureAwait(false))["taskDefinition"]!;
            var defs = def["containerDefinitions"]!.AsArray();
            for (var i = 0; i < defs.Count; i++)
            {
                var c = defs[i]!;
                var name = c["name"]!.GetValue<string>();
                var lc = c["logConfiguration"];
                var driver = lc?["logDriver"]?.GetValue<string>();
                if (driver != "awslogs")
                {
                    await Console.Error.WriteLineAsync($"berth logs: container {name} does not use awslogs (logDriver: {driver ?? "none, json-file"}); its output is only in 'docker logs' on its host.").ConfigureAwait(false);
                    continue;
                }
                var group = lc!["options"]?["awslogs-group"]?.GetValue<string>() ?? "";
                var prefix = lc["options"]?["awslogs-stream-prefix"]?.GetValue<string>();
                streams.Add(new Source(name, group, prefix is { Length: > 0 } ? $"{prefix}/{name}/{taskId}" : null, Palette[streams.Count % Palette.Length]));
            }
            if (streams.Count == 0)
            {
                await Console.Error.WriteLineAsync("berth logs: no container of this task uses awslogs.").ConfigureAwait(false);
                return 1;
            }
            var width = streams.Max(s => s.Container.Length);
            var quietSinceStop = 0;
            while (true)
            {
                // Streams without a prefix are named after the container's id, known once it is created.
                ResolveStreams(streams, task);
                var stopped = task["lastStatus"]?.GetValue<string>() == "STOPPED";
                var lines = new List<(long Timestamp, Source From, string Message)>();
                foreach (var s in streams.Where(s => s.Stream is not null))
                {
                    await s.ReadAsync(api, lines, ct).ConfigureAwait(false);
                }
                foreach (var (_, from, message) in lines.OrderBy(l => l.Timestamp))
                {
                    AnsiConsole.MarkupLine($"[{from.Colour.ToMarkup()}]{Markup.Escape(from.Container.PadRight(width))}[/] | {Markup.Escape(message)}");
                }
                // After the stop the agent may still be shipping the last lines: end after a few quiet polls.
                quietSinceStop = stopped && lines.Count == 0 ? quietSinceStop + 1 : 0;
                if (!follow || quietSinceStop >= QuietPollsAfterStop)
                {
                    return 0;
                }
                await Task.Delay(PollInterval, ct).ConfigureAwait(false);
                task = await DescribeTaskAsync(api, cluster, taskArn, ct).ConfigureAwait(false) ?? task;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception e) when (e is HttpRequestException or ApiException)
        {
            await Console.Error.WriteLineAsync($"berth logs: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    private static void ResolveStreams(List<Source> streams, JsonNode task)
    {
        foreach (var s in streams.Where(s => s.Stream is null))
        {
            var runtimeId = task["containers"]?.AsArray().FirstOrDefault(c => c?["name"]?.GetValue<string>() == s.Container)?["runtimeId"]?.GetValue<string>();
            if (runtimeId is { Length: > 0 })
            {
                s.Stream = runtimeId;
            }
        }
    }

    private static async Task<JsonNode?> DescribeTaskAsync(Api api, string cluster, string task, CancellationToken ct)
    {
        var r = await api.CallAsync("AmazonEC2ContainerServiceV20141113.DescribeTasks", new JsonObject { ["cluster"] = cluster, ["tasks"] = new JsonArray(task) }, ct).ConfigureAwait(false);
        return r["tasks"]?.AsArray().FirstOrDefault();
    }

    private sealed class Source(string container, string group, string? stream, Color colour)
    {
        private string? _token;

        public string Container { get; } = container;
        public Color Colour { get; } = colour;
        public string? Stream { get; set; } = stream;

        /// <summary>Every event after the last read, GetLogEvents page by page until the forward token stops moving.</summary>
        public async Task ReadAsync(Api api, List<(long, Source, string)> into, CancellationToken ct)
        {
            while (true)
            {
                var req = new JsonObject { ["logGroupName"] = group, ["logStreamName"] = Stream, ["startFromHead"] = true };
                if (_token is not null)
                {
                    req["nextToken"] = _token;
                }
                JsonNode r;
                try
                {
                    r = await api.CallAsync("Logs_20140328.GetLogEvents", req, ct).ConfigureAwait(false);
                }
                catch (ApiException e) when (e.Type == "ResourceNotFoundException")
                {
                    return; // nothing shipped yet
                }
                foreach (var ev in r["events"]!.AsArray())
                {
                    into.Add((ev!["timestamp"]!.GetValue<long>(), this, ev["message"]!.GetValue<string>()));
                }
                var next = r["nextForwardToken"]?.GetValue<string>();
                if (next is null || next == _token)
                {
                    return;
                }
                _token = next;
                if (r["events"]!.AsArray().Count == 0)
                {
                    return;
                }
            }
        }
    }

    private sealed class Api(HttpClient http)
    {
        public async Task<JsonNode> CallAsync(string target, JsonObject body, CancellationToken ct)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "/") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8) };
            req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-amz-json-1.1");
            req.Headers.Add("X-Amz-Target", target);
            using var resp = await http.SendAsync(req, ct).ConfigureAwait(false);
            var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            var json = text.Length > 0 ? JsonNode.Parse(text) : null;
            if (!resp.IsSuccessStatusCode)
            {
                var type = json?["__type"]?.GetValue<string>() ?? $"HTTP {(int)resp.StatusCode}";
                type = type[(type.LastIndexOf('#') + 1)..];
                throw new ApiException(type, $"{target[(target.IndexOf('.', StringComparison.Ordinal) + 1)..]}: {type}: {json?["message"]?.GetValue<string>() ?? json?["Message"]?.GetValue<string>() ?? text}");
            }
            return json ?? new JsonObject();
        }
    }

    private sealed class ApiException(string type, string message) : Exception(message)
    {
        public string Type { get; } = type;
    }
}
