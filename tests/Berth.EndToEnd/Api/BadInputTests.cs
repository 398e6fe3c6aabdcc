using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Malformed requests across operations: each must answer 4xx with the AWS error type and a message
/// naming the offending field, and must leave the state exactly as it was.
/// </summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private BerthServer? _server;
    private EcsHttp? _ecs;

    public async ValueTask InitializeAsync()
    {
        _server = await BerthServer.StartAsync("server");
        _ecs = new EcsHttp(_server.Endpoint);
        // Something to corrupt: a cluster and a task definition.
        Assert.Equal(200, (await _ecs.CallAsync("CreateCluster", """{"clusterName":"bad-input"}""")).Status);
        var td = await _ecs.CallAsync("RegisterTaskDefinition", """{"family":"bad-input","containerDefinitions":[{"name":"a","image":"berth-test/busybox:latest","memory":16}]}""");
        Assert.True(td.Status == 200, td.Text);
    }

    public async ValueTask DisposeAsync()
    {
        _ecs?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    // (target or operation, body, status, __type, text the message must contain)
    public static TheoryData<string?, string, int, string, string> Cases => new()
    {
        { null, "{}", 400, "UnknownOperationException", "X-Amz-Target" },
        { "AmazonEC2ContainerServiceV20141113.FlyToMoon", "{}", 400, "UnknownOperationException", "FlyToMoon" },
        { "NoSuchService_2020.ListClusters", "{}", 400, "UnknownOperationException", "NoSuchService" },
        { "ListClusters", "{not json", 400, "SerializationException", "JSON" },
        { "ListClusters", "[1,2]", 400, "SerializationException", "request body" },
        { "ListClusters", "\"text\"", 400, "SerializationException", "request body" },
        { "ListClusters", """{"maxResults":"ten"}""", 400, "SerializationException", "maxResults" },
        { "ListClusters", """{"maxResults":1.5}""", 400, "SerializationException", "maxResults" },
        { "ListClusters", """{"maxResults":99999999999}""", 400, "SerializationException", "maxResults" },
        { "ListClusters", """{"bogusField":1}""", 400, "SerializationException", "bogusField" },
        { "ListClusters", """{"nextToken":{"a":1}}""", 400, "SerializationException", "nextToken" },
        { "ListClusters", """{"maxResults":0}""", 400, "InvalidParameterException", "maxResults" },
        { "ListClusters", """{"maxResults":101}""", 400, "InvalidParameterException", "maxResults" },
        { "ListClusters", """{"nextToken":"not-a-token"}""", 400, "InvalidParameterException", "nextToken" },
        { "CreateCluster", """{"clusterName":42}""", 400, "SerializationException", "clusterName" },
        { "CreateCluster", """{"clusterName":"has spaces"}""", 400, "InvalidParameterException", "clusterName" },
        { "CreateCluster", """{"clusterName":"ok","tags":[{"key":"k","value":"v","extra":1}]}""", 400, "SerializationException", "tags[0].extra" },
        { "CreateCluster", """{"clusterName":"ok","tags":[{"value":"v"}]}""", 400, "InvalidParameterException", "tags[0].key" },
        { "CreateCluster", """{"clusterName":"ok","settings":[{"name":"nope","value":"x"}]}""", 400, "InvalidParameterException", "settings[0].name" },
        { "DescribeClusters", """{"clusters":"bad-input"}""", 400, "SerializationException", "clusters" },
        { "DescribeClusters", """{"clusters":["bad-input",null]}""", 400, "InvalidParameterException", "clusters[1]" },
        { "DescribeClusters", """{"include":["EVERYTHING"]}""", 400, "InvalidParameterException", "include[0]" },
        { "DeleteCluster", "{}", 400, "InvalidParameterException", "cluster" },
        { "DeleteCluster", """{"cluster":"no-such-cluster"}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "RegisterTaskDefinition", "{}", 400, "InvalidParameterException", "family" },
        { "RegisterTaskDefinition", """{"family":"f"}""", 400, "InvalidParameterException", "containerDefinitions" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":{}}""", 400, "SerializationException", "containerDefinitions" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":"lots"}]}""", 400, "SerializationException", "containerDefinitions[0].memory" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"portMappings":[{"containerPort":"80"}]}]}""", 400, "SerializationException", "containerDefinitions[0].portMappings[0].containerPort" },
        { "RegisterTaskDefinition", """{"family":"f","networkMode":"carrier-pigeon","containerDefinitions":[{"name":"a","image":"i","memory":16}]}""", 400, "InvalidParameterException", "networkMode" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"portMappings":[{"containerPort":80,"protocol":"sctp"}]}]}""", 400, "InvalidParameterException", "protocol" },
        { "RegisterTaskDefinition", """{"family":"bad family!","containerDefinitions":[{"name":"a","image":"i","memory":16}]}""", 400, "ClientException", "family" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[]}""", 400, "ClientException", "container" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16},{"name":"a","image":"i","memory":16}]}""", 400, "ClientException", "name" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"essential":false}]}""", 400, "ClientException", "essential" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i"}]}""", 400, "ClientException", "memory" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"memoryReservation":64}]}""", 400, "ClientException", "memoryReservation" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"portMappings":[{"containerPort":70000}]}]}""", 400, "ClientException", "containerPort" },
        { "RegisterTaskDefinition", """{"family":"f","networkMode":"host","containerDefinitions":[{"name":"a","image":"i","memory":16,"portMappings":[{"containerPort":80,"hostPort":81}]}]}""", 400, "ClientException", "hostPort" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"dependsOn":[{"containerName":"ghost","condition":"START"}]}]}""", 400, "ClientException", "containerDefinitions[0].dependsOn[0].containerName" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16},{"name":"b","image":"i","memory":16,"essential":false},{"name":"c","image":"i","memory":16,"dependsOn":[{"containerName":"b","condition":"READY"}]}]}""", 400, "InvalidParameterException", "containerDefinitions[2].dependsOn[0].condition" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16},{"name":"b","image":"i","memory":16,"dependsOn":[{"containerName":"a","condition":"HEALTHY"}]}]}""", 400, "ClientException", "containerDefinitions[1].dependsOn[0].condition" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16},{"name":"b","image":"i","memory":16,"dependsOn":[{"containerName":"a","condition":"SUCCESS"}]}]}""", 400, "ClientException", "cannot be an essential container" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"dependsOn":[{"containerName":"b","condition":"START"}]},{"name":"b","image":"i","memory":16,"dependsOn":[{"containerName":"a","condition":"START"}]}]}""", 400, "ClientException", "cycle" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"dependsOn":[{"containerName":"a","condition":"START"}]}]}""", 400, "ClientException", "containerDefinitions[0].dependsOn[0].containerName" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"healthCheck":{"command":["CMD-SHELL","true"],"interval":1}}]}""", 400, "ClientException", "containerDefinitions[0].healthCheck.interval" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"healthCheck":{"command":["CMD-SHELL","true"],"retries":11}}]}""", 400, "ClientException", "containerDefinitions[0].healthCheck.retries" },
        { "RegisterTaskDefinition", """{"family":"f","containerDefinitions":[{"name":"a","image":"i","memory":16,"healthCheck":{"command":["true"]}}]}""", 400, "ClientException", "containerDefinitions[0].healthCheck.command" },
        { "DescribeTaskDefinition", "{}", 400, "InvalidParameterException", "taskDefinition" },
        { "DescribeTaskDefinition", """{"taskDefinition":"no-such-family"}""", 400, "ClientException", "Unable to describe task definition" },
        { "DeregisterTaskDefinition", """{"taskDefinition":"bad-input:99"}""", 400, "ClientException", "task definition" },
        { "ListTaskDefinitions", """{"sort":"SIDEWAYS"}""", 400, "InvalidParameterException", "sort" },
        { "ListTaskDefinitions", """{"status":"MAYBE"}""", 400, "InvalidParameterException", "status" },
        { "RunTask", "{}", 400, "InvalidParameterException", "taskDefinition" },
        { "RunTask", """{"taskDefinition":"bad-input","count":11}""", 400, "InvalidParameterException", "count" },
        { "RunTask", """{"taskDefinition":"bad-input","count":0}""", 400, "InvalidParameterException", "count" },
        { "RunTask", """{"taskDefinition":"bad-input","launchType":"SUBMARINE"}""", 400, "InvalidParameterException", "launchType" },
        { "RunTask", """{"taskDefinition":"bad-input","cluster":"no-such-cluster"}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "RunTask", """{"taskDefinition":"no-such-family","cluster":"bad-input"}""", 400, "ClientException", "task definition" },
        { "RunTask", """{"taskDefinition":"bad-input","cluster":"bad-input","overrides":{"containerOverrides":[{"name":"ghost"}]}}""", 400, "InvalidParameterException", "ghost" },
        { "RunTask", """{"taskDefinition":"bad-input","placementStrategy":[{"type":"zigzag"}]}""", 400, "InvalidParameterException", "placementStrategy[0].type" },
        { "StopTask", """{"cluster":"bad-input"}""", 400, "InvalidParameterException", "task" },
        { "StopTask", """{"cluster":"bad-input","task":"0123456789abcdef0123456789abcdef"}""", 400, "InvalidParameterException", "task" },
        { "DescribeTasks", """{"cluster":"bad-input"}""", 400, "InvalidParameterException", "tasks" },
        { "ListTasks", """{"cluster":"bad-input","desiredStatus":"DANCING"}""", 400, "InvalidParameterException", "desiredStatus" },
        { "ListTasks", """{"cluster":"no-such-cluster"}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "TagResource", """{"resourceArn":"arn:aws:ecs:us-east-1:000000000000:cluster/bad-input","tags":[{"key":"aws:reserved","value":"x"}]}""", 400, "InvalidParameterException", "aws:" },
        { "PutAttributes", """{"cluster":"bad-input","attributes":[{"name":"a","value":"b","targetId":"nope"}]}""", 400, "TargetNotFoundException", "targetId" },
        { "PutAttributes", """{"cluster":"bad-input","attributes":[{"name":"a","value":"b"}]}""", 400, "InvalidParameterException", "attributes[0].targetId" },
        { "ListAttributes", """{"cluster":"bad-input","targetType":"container-instance","attributeValue":"x"}""", 400, "InvalidParameterException", "attributeValue" },
        { "PutAccountSetting", """{"name":"notASetting","value":"x"}""", 400, "InvalidParameterException", "name" },
        { "ListAccountSettings", """{"maxResults":11}""", 400, "InvalidParameterException", "maxResults" },
        { "UpdateContainerInstancesState", """{"containerInstances":["x"],"status":"ASLEEP"}""", 400, "InvalidParameterException", "status" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Request_Malformed_AnswersTypedErrorAndChangesNothing(string? target, string body, int status, string type, string mentions)
    {
        var before = await SnapshotAsync();
        var fullTarget = target is null || target.Contains('.', StringComparison.Ordinal) ? target : EcsHttp.Prefix + target;
        var (code, json, text) = await _ecs!.SendAsync(fullTarget, body);
        Assert.True(code == status, $"status {code}, expected {status}: {text}");
        Assert.Equal(type, json?["__type"]?.GetValue<string>());
        Assert.Contains(mentions, json?["message"]?.GetValue<string>() ?? "", StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await SnapshotAsync());
    }

    /// <summary>
    /// A chunked body (no Content-Length) far above the front doors' limits is refused with 413 while it streams,
    /// never buffered whole: the server's resident memory stays near where it was (measured before the bound: one
    /// 1.5 GB chunked POST grew it from 126 MiB to 3.75 GiB before the 413).
    /// </summary>
    [Theory]
    [InlineData("AmazonEC2ContainerServiceV20141113.ListClusters", "application/x-amz-json-1.1", "SerializationException")]
    [InlineData(null, "application/x-www-form-urlencoded", "ValidationError")]
    public async Task Request_ChunkedBodyOverLimit_Answers413WithoutBufferingIt(string? target, string contentType, string errorType)
    {
        var pid = _server!.Pid ?? throw new InvalidOperationException("the server is not running");
        var before = ProcessMemory.ResidentMiB(pid);
        const long total = 400L * 1024 * 1024;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using var request = new HttpRequestMessage(HttpMethod.Post, _server.Endpoint + "/") { Content = new StreamContent(new RepeatingStream(total, target is null ? (byte)'a' : (byte)' ')) };
        request.Headers.TransferEncodingChunked = true;
        request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
        if (target is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Amz-Target", target);
        }
        try
        {
            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode == 413, $"status {(int)response.StatusCode}: {text}");
            Assert.Contains(errorType, text, StringComparison.Ordinal);
        }
        catch (HttpRequestException)
        {
            // The server may answer and close before the client has finished sending, so the answer can be lost;
            // the memory bound below and the server's health after it are what this test is about.
        }
        var after = ProcessMemory.ResidentMiB(pid);
        Assert.True(after - before < 120, $"server resident memory grew from {before} MiB to {after} MiB");
        Assert.Equal(200, (await _ecs!.CallAsync("ListClusters", "{}")).Status);
    }


    private async Task<string> SnapshotAsync()
    {
        var parts = new List<string>();
        foreach (var (op, body) in new[]
        {
            ("ListClusters", "{}"),
            ("DescribeClusters", """{"clusters":["bad-input"]}"""),
            ("ListTaskDefinitions", "{}"),
            ("ListTaskDefinitionFamilies", "{}"),
            ("ListTasks", """{"cluster":"bad-input"}"""),
        })
        {
            var r = await _ecs!.CallAsync(op, body);
            parts.Add($"{op}:{r.Status}:{r.Text}");
        }
        return string.Join('\n', parts);
    }
}
