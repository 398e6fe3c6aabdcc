using System.Diagnostics;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>Bounded fuzzing of the front door: mutated valid requests must never produce a 5xx.</summary>
public sealed class FuzzTests
{
    private static readonly (string Op, string Body)[] Seeds =
    [
        ("CreateCluster", """{"clusterName":"fz","tags":[{"key":"k","value":"v"}],"settings":[{"name":"containerInsights","value":"enabled"}]}"""),
        ("DescribeClusters", """{"clusters":["fz","default"],"include":["TAGS","SETTINGS","STATISTICS"]}"""),
        ("ListClusters", """{"maxResults":5}"""),
        ("UpdateClusterSettings", """{"cluster":"fz","settings":[{"name":"containerInsights","value":"disabled"}]}"""),
        ("RegisterTaskDefinition", """{"family":"fz","networkMode":"bridge","cpu":"256","memory":"512","containerDefinitions":[{"name":"a","image":"berth-test/busybox:latest","memory":16,"cpu":10,"essential":true,"command":["sleep","1"],"environment":[{"name":"A","value":"1"}],"portMappings":[{"containerPort":80,"hostPort":0,"protocol":"tcp"}],"ulimits":[{"name":"nofile","softLimit":10,"hardLimit":20}]}],"tags":[{"key":"t","value":"v"}]}"""),
        ("DescribeTaskDefinition", """{"taskDefinition":"fz","include":["TAGS"]}"""),
        ("ListTaskDefinitions", """{"familyPrefix":"fz","status":"ACTIVE","sort":"DESC","maxResults":10}"""),
        ("ListTaskDefinitionFamilies", """{"familyPrefix":"f","status":"ALL"}"""),
        ("DeregisterTaskDefinition", """{"taskDefinition":"fz:1"}"""),
        ("RunTask", """{"cluster":"fz","taskDefinition":"fz","count":1,"startedBy":"fuzz","overrides":{"containerOverrides":[{"name":"a","command":["true"],"environment":[{"name":"B","value":"2"}],"memory":32}]},"placementStrategy":[{"type":"spread","field":"attribute:ecs.availability-zone"}],"placementConstraints":[{"type":"distinctInstance"}]}"""),
        ("DescribeTasks", """{"cluster":"fz","tasks":["0123456789abcdef0123456789abcdef"],"include":["TAGS"]}"""),
        ("ListTasks", """{"cluster":"fz","desiredStatus":"STOPPED","family":"fz","maxResults":3}"""),
        ("StopTask", """{"cluster":"fz","task":"0123456789abcdef0123456789abcdef","reason":"fuzz"}"""),
        ("DescribeContainerInstances", """{"cluster":"fz","containerInstances":["abc"]}"""),
        ("ListContainerInstances", """{"cluster":"fz","filter":"attribute:ecs.os-type == linux","status":"ACTIVE"}"""),
        ("UpdateContainerInstancesState", """{"cluster":"fz","containerInstances":["abc"],"status":"DRAINING"}"""),
        ("TagResource", """{"resourceArn":"arn:aws:ecs:us-east-1:000000000000:cluster/fz","tags":[{"key":"a","value":"b"}]}"""),
        ("ListTagsForResource", """{"resourceArn":"arn:aws:ecs:us-east-1:000000000000:cluster/fz"}"""),
        ("PutAttributes", """{"cluster":"fz","attributes":[{"name":"stack","value":"prod","targetId":"abc"}]}"""),
        ("PutAccountSetting", """{"name":"containerInsights","value":"enabled"}"""),
        ("DeleteCluster", """{"cluster":"fz"}"""),
    ];

    [Fact]
    public async Task Fuzz_TenThousandMutatedRequests_NeverAnswer5xx()
    {
        await using var server = await BerthServer.StartAsync("server");
        using var ecs = new EcsHttp(server.Endpoint);
        const int total = 10_000;
        var sent = 0;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async worker =>
        {
            var rng = new Random(1234 + worker);
            while (sw.Elapsed < TimeSpan.FromSeconds(150))
            {
                var n = Interlocked.Increment(ref sent);
                if (n > total)
                {
                    return;
                }
                var (op, body) = Seeds[rng.Next(Seeds.Length)];
                var mutated = Mutate(body, rng);
                var target = rng.Next(50) == 0 ? EcsHttp.Prefix + op + "x" : EcsHttp.Prefix + op;
                var (status, json, text) = await ecs.SendAsync(target, mutated);
                if (status >= 500)
                {
                    failures.Add($"{status} {op} {mutated} -> {text}");
                }
                else if (status >= 400 && json?["__type"] is null)
                {
                    failures.Add($"{status} without __type: {op} {mutated} -> {text}");
                }
            }
        }));
        Assert.True(sent >= total, $"only {sent} requests in the time box");
        Assert.True(failures.IsEmpty, string.Join('\n', failures.Take(10)));
        using var http = new HttpClient();
        Assert.True((await http.GetAsync(server.Endpoint + "/_berth/health")).IsSuccessStatusCode);
    }

    private static string Mutate(string body, Random rng)
    {
        switch (rng.Next(6))
        {
            case 0:
                return body[..rng.Next(body.Length)]; // truncation
            case 1:
                {
                    var chars = body.ToCharArray();
                    for (var i = 0; i < 1 + rng.Next(4); i++)
                    {
                        chars[rng.Next(chars.Length)] = "{}[]\",:0a\\ -1.e"[rng.Next(15)];
                    }
                    return new string(chars);
                }
            default:
                {
                    var node = JsonNode.Parse(body)!;
                    for (var i = 0; i < 1 + rng.Next(3); i++)
                    {
                        MutateNode(node, rng, 0);
                    }
                    return node.ToJsonString();
                }
        }
    }

    private static void MutateNode(JsonNode node, Random rng, int depth)
    {
        if (node is JsonObject obj && obj.Count > 0)
        {
            var keys = obj.Select(p => p.Key).ToList();
            var key = keys[rng.Next(keys.Count)];
            if (depth < 4 && obj[key] is JsonNode child && (child is JsonObject || child is JsonArray) && rng.Next(2) == 0)
            {
                MutateNode(child, rng, depth + 1);
                return;
            }
            switch (rng.Next(5))
            {
                case 0: obj.Remove(key); break;
                case 1: obj[key] = RandomValue(rng); break;
                case 2: obj["x" + rng.Next(100)] = RandomValue(rng); break;
                case 3: obj[key] = null; break;
                default: obj[key] = new JsonArray(RandomValue(rng), RandomValue(rng)); break;
            }
        }
        else if (node is JsonArray arr)
        {
            if (arr.Count > 0 && rng.Next(2) == 0 && depth < 4 && arr[rng.Next(arr.Count)] is JsonNode c && (c is JsonObject || c is JsonArray))
            {
                MutateNode(c, rng, depth + 1);
            }
            else
            {
                arr.Add(RandomValue(rng));
            }
        }
    }

    private static JsonNode? RandomValue(Random rng) => rng.Next(9) switch
    {
        0 => JsonValue.Create(rng.Next(int.MinValue, int.MaxValue)),
        1 => JsonValue.Create(long.MaxValue),
        2 => JsonValue.Create(rng.NextDouble() * 1e10),
        3 => JsonValue.Create(new string('a', rng.Next(0, 3000))),
        4 => JsonValue.Create(rng.Next(2) == 0),
        5 => new JsonObject { ["k"] = "v" },
        6 => null,
        7 => JsonValue.Create("arn:aws:ecs:us-east-1:000000000000:task/fz/" + rng.Next()),
        _ => JsonValue.Create(-rng.Next(100)),
    };
}
