using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>One <c>berth server</c> (no agent: services are recorded but nothing is placed, so the state holds still) with services to corrupt.</summary>
public sealed class ServiceBadInputServer : IAsyncLifetime
{
    public const string C = "svc-bad";
    private BerthServer? _server;

    public EcsHttp Ecs { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        _server = await BerthServer.StartAsync("server");
        Ecs = new EcsHttp(_server.Endpoint);
        await OkAsync("CreateCluster", $$"""{"clusterName":"{{C}}"}""");
        await OkAsync("RegisterTaskDefinition", """{"family":"svc-bad","containerDefinitions":[{"name":"a","image":"berth-test/busybox:latest","memory":16}]}""");
        await OkAsync("RegisterTaskDefinition", """{"family":"svc-fargate","requiresCompatibilities":["FARGATE"],"networkMode":"awsvpc","cpu":"256","memory":"512","containerDefinitions":[{"name":"a","image":"berth-test/busybox:latest"}]}""");
        await OkAsync("CreateService", $$"""{"cluster":"{{C}}","serviceName":"web","taskDefinition":"svc-bad","desiredCount":2}""");
        await OkAsync("CreateService", $$"""{"cluster":"{{C}}","serviceName":"idle","taskDefinition":"svc-bad","desiredCount":0}""");
        await OkAsync("CreateService", $$"""{"cluster":"{{C}}","serviceName":"daemon","taskDefinition":"svc-bad","schedulingStrategy":"DAEMON"}""");
        // A deleted service (no tasks, so INACTIVE at once): it is still describable but cannot be updated.
        await OkAsync("CreateService", $$"""{"cluster":"{{C}}","serviceName":"gone","taskDefinition":"svc-bad","desiredCount":0}""");
        await OkAsync("DeleteService", $$"""{"cluster":"{{C}}","service":"gone"}""");
        await Wait.ForAsync(async () =>
        {
            var d = await Ecs.CallAsync("DescribeServices", $$"""{"cluster":"{{C}}","services":["gone"]}""");
            return d.Body?["services"]?[0]?["status"]?.GetValue<string>() == "INACTIVE" ? d.Text : null;
        }, TimeSpan.FromSeconds(30), "the deleted service to be INACTIVE");
    }

    public async ValueTask DisposeAsync()
    {
        Ecs?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private async Task OkAsync(string op, string body)
    {
        var r = await Ecs.CallAsync(op, body);
        Assert.True(r.Status == 200, $"{op}: {r.Text}");
    }
}

/// <summary>
/// Bad input to the services API: each case answers 4xx with ECS's error type and a message naming the
/// field, and leaves every service as it was (status, counts, definition, configuration, deployments).
/// </summary>
public sealed class ServiceBadInputTests(ServiceBadInputServer fixture) : IClassFixture<ServiceBadInputServer>
{
    private const string C = ServiceBadInputServer.C;
    private EcsHttp Ecs => fixture.Ecs;

    private const string Ipe = "InvalidParameterException";
    private const string Ser = "SerializationException";

    // (operation, body, status, __type, text the message must contain)
    public static TheoryData<string, string, int, string, string> Cases => new()
    {
        // CreateService
        { "CreateService", """{"cluster":"no-such-cluster","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"no-such-family","desiredCount":1}""", 400, "ClientException", "TaskDefinition not found" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad:99","desiredCount":1}""", 400, "ClientException", "TaskDefinition" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","desiredCount":1}""", 400, Ipe, "taskDefinition" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-fargate","desiredCount":1}""", 400, Ipe, "Network Configuration must be provided when networkMode 'awsvpc' is specified." },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":-1}""", 400, Ipe, "desiredCount" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":"2"}""", 400, Ser, "desiredCount" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1.5}""", 400, Ser, "desiredCount" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad"}""", 400, Ipe, "desiredCount" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentConfiguration":{"minimumHealthyPercent":101}}""", 400, Ipe, "deploymentConfiguration.minimumHealthyPercent" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentConfiguration":{"minimumHealthyPercent":-1}}""", 400, Ipe, "deploymentConfiguration.minimumHealthyPercent" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentConfiguration":{"maximumPercent":99}}""", 400, Ipe, "deploymentConfiguration.maximumPercent" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentConfiguration":{"deploymentCircuitBreaker":{"enable":true}}}""", 400, Ipe, "deploymentConfiguration.deploymentCircuitBreaker.rollback" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentConfiguration":{"deploymentCircuitBreaker":{"rollback":false}}}""", 400, Ipe, "deploymentConfiguration.deploymentCircuitBreaker.enable" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentConfiguration":{"deploymentCircuitBreaker":{"enable":"yes","rollback":false}}}""", 400, Ser, "deploymentConfiguration.deploymentCircuitBreaker.enable" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentConfiguration":{"strategy":"BLUE_GREEN"}}""", 400, Ipe, "deploymentConfiguration.strategy" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementConstraints":[{"type":"sameHost"}]}""", 400, Ipe, "placementConstraints[0].type" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementConstraints":[{"type":"memberOf"}]}""", 400, Ipe, "placementConstraints[0].expression" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementConstraints":[{"type":"distinctInstance"},{"type":"memberOf","expression":"ecs.os-type == linux"}]}""", 400, Ipe, "placementConstraints[1].expression" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementConstraints":{"type":"distinctInstance"}}""", 400, Ser, "placementConstraints" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementStrategy":[{"type":"zigzag"}]}""", 400, Ipe, "placementStrategy[0].type" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementStrategy":[{"type":"binpack","field":"disk"}]}""", 400, Ipe, "placementStrategy[0].field" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementStrategy":[{"type":"spread"}]}""", 400, Ipe, "placementStrategy[0].field" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"placementStrategy":[{"type":"random"},{"type":"random"},{"type":"random"},{"type":"random"},{"type":"random"},{"type":"random"}]}""", 400, Ipe, "placementStrategy" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","schedulingStrategy":"DAEMON","placementStrategy":[{"type":"random"}]}""", 400, Ipe, "placementStrategy" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","schedulingStrategy":"DAEMON","desiredCount":2}""", 400, Ipe, "desiredCount" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","schedulingStrategy":"BATCH","desiredCount":2}""", 400, Ipe, "schedulingStrategy" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","launchType":"FARGATE","desiredCount":2}""", 400, Ipe, "Task definition does not support launch_type FARGATE." },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","launchType":"SUBMARINE","desiredCount":2}""", 400, Ipe, "launchType" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","propagateTags":"EVERYTHING","desiredCount":2}""", 400, Ipe, "propagateTags" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"bad name!","taskDefinition":"svc-bad","desiredCount":1}""", 400, Ipe, "serviceName" },
        { "CreateService", "{\"cluster\":\"svc-bad\",\"serviceName\":\"" + new string('s', 256) + "\",\"taskDefinition\":\"svc-bad\",\"desiredCount\":1}", 400, Ipe, "serviceName" },
        { "CreateService", """{"cluster":"svc-bad","taskDefinition":"svc-bad","desiredCount":1}""", 400, Ipe, "serviceName" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"web","taskDefinition":"svc-bad","desiredCount":2}""", 400, Ipe, "Creation of service was not idempotent" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"networkConfiguration":{"awsvpcConfiguration":{"subnets":["subnet-1"]}}}""", 400, Ipe, "Network Configuration is not valid for the given networkMode of this task definition." },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"serviceRegistries":[{"registryArn":"arn:aws:servicediscovery:us-east-1:000000000000:service/srv-1"}]}""", 400, Ipe, "serviceRegistries" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"capacityProviderStrategy":[{"capacityProvider":"cp"}]}""", 400, "ClientException", "The specified capacity provider does not exist. Specify a valid name or ARN and try again." },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"platformVersion":"LATEST"}""", 400, Ipe, "The platform version must be null when specifying an EC2 launch type." },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"deploymentController":{"type":"CODE_DEPLOY"}}""", 400, Ipe, "deploymentController" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"healthCheckGracePeriodSeconds":-5}""", 400, Ipe, "healthCheckGracePeriodSeconds" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"tags":[{"key":"aws:owner","value":"x"}]}""", 400, Ipe, "tags[0].key" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"clientToken":""}""", 400, Ipe, "clientToken" },
        { "CreateService", """{"cluster":"svc-bad","serviceName":"new","taskDefinition":"svc-bad","desiredCount":1,"bogusMember":true}""", 400, Ser, "bogusMember" },
        // UpdateService
        { "UpdateService", """{"cluster":"svc-bad","service":"ghost","desiredCount":1}""", 400, "ServiceNotFoundException", "Service not found" },
        { "UpdateService", """{"cluster":"no-such-cluster","service":"web","desiredCount":1}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "UpdateService", """{"cluster":"svc-bad","service":"gone","desiredCount":1}""", 400, "ServiceNotActiveException", "Service was not ACTIVE" },
        { "UpdateService", """{"cluster":"svc-bad","desiredCount":1}""", 400, Ipe, "service" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","desiredCount":-3}""", 400, Ipe, "desiredCount" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","desiredCount":"3"}""", 400, Ser, "desiredCount" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","taskDefinition":"svc-bad:9"}""", 400, "ClientException", "TaskDefinition" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","taskDefinition":"svc-fargate"}""", 400, Ipe, "Network Configuration must be provided when networkMode 'awsvpc' is specified." },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","deploymentConfiguration":{"maximumPercent":2001}}""", 400, Ipe, "deploymentConfiguration.maximumPercent" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","deploymentConfiguration":{"minimumHealthyPercent":150}}""", 400, Ipe, "deploymentConfiguration.minimumHealthyPercent" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","deploymentConfiguration":{"deploymentCircuitBreaker":{}}}""", 400, Ipe, "deploymentConfiguration.deploymentCircuitBreaker.enable" },
        { "UpdateService", """{"cluster":"svc-bad","service":"daemon","desiredCount":2}""", 400, Ipe, "desiredCount" },
        { "UpdateService", """{"cluster":"svc-bad","service":"daemon","placementStrategy":[{"type":"random"}]}""", 400, Ipe, "placementStrategy" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","placementConstraints":[{"type":"distinctInstance","expression":"attribute:a == b"}]}""", 400, Ipe, "placementConstraints[0].expression" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","deploymentController":{"type":"ECS"}}""", 400, Ipe, "deploymentController" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","networkConfiguration":{"awsvpcConfiguration":{"subnets":["subnet-1"]}}}""", 400, Ipe, "Network Configuration is not valid for the given networkMode of this task definition." },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","serviceRegistries":[{"registryArn":"arn:aws:servicediscovery:us-east-1:000000000000:service/srv-1"}]}""", 400, Ipe, "serviceRegistries" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","capacityProviderStrategy":[{"capacityProvider":"cp"}]}""", 400, "ClientException", "The specified capacity provider does not exist. Specify a valid name or ARN and try again." },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","propagateTags":"ALL"}""", 400, Ipe, "propagateTags" },
        { "UpdateService", """{"cluster":"svc-bad","service":"web","forceNewDeployment":"true"}""", 400, Ser, "forceNewDeployment" },
        // DeleteService
        { "DeleteService", """{"cluster":"svc-bad","service":"web"}""", 400, Ipe, "The service cannot be stopped while it is scaled above 0." }, // ECS's exact message
        { "DeleteService", """{"cluster":"svc-bad","service":"web","force":false}""", 400, Ipe, "scaled above 0" },
        { "DeleteService", """{"cluster":"svc-bad","service":"ghost"}""", 400, "ServiceNotFoundException", "Service not found" },
        { "DeleteService", """{"cluster":"no-such-cluster","service":"web","force":true}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "DeleteService", """{"cluster":"svc-bad","service":"web","force":"yes"}""", 400, Ser, "force" },
        { "DeleteService", """{"cluster":"svc-bad"}""", 400, Ipe, "service" },
        // DescribeServices
        { "DescribeServices", """{"cluster":"svc-bad","services":["a","b","c","d","e","f","g","h","i","j","k"]}""", 400, Ipe, "services" },
        { "DescribeServices", """{"cluster":"svc-bad","services":[]}""", 400, Ipe, "services" },
        { "DescribeServices", """{"cluster":"svc-bad"}""", 400, Ipe, "services" },
        { "DescribeServices", """{"cluster":"svc-bad","services":"web"}""", 400, Ser, "services" },
        { "DescribeServices", """{"cluster":"no-such-cluster","services":["web"]}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "DescribeServices", """{"cluster":"svc-bad","services":["web"],"include":["EVENTS"]}""", 400, Ipe, "include[0]" },
        // ListServices
        { "ListServices", """{"cluster":"svc-bad","maxResults":101}""", 400, Ipe, "maxResults" },
        { "ListServices", """{"cluster":"svc-bad","maxResults":0}""", 400, Ipe, "maxResults" },
        { "ListServices", """{"cluster":"svc-bad","maxResults":"ten"}""", 400, Ser, "maxResults" },
        { "ListServices", """{"cluster":"no-such-cluster"}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "ListServices", """{"cluster":"svc-bad","nextToken":"garbage"}""", 400, Ipe, "nextToken" },
        { "ListServices", """{"cluster":"svc-bad","schedulingStrategy":"BATCH"}""", 400, Ipe, "schedulingStrategy" },
        { "ListServices", """{"cluster":"svc-bad","launchType":"SUBMARINE"}""", 400, Ipe, "launchType" },
        // ListServiceDeployments / DescribeServiceDeployments
        { "ListServiceDeployments", """{"cluster":"svc-bad","service":"ghost"}""", 400, "ServiceNotFoundException", "Service not found" },
        { "ListServiceDeployments", """{"cluster":"no-such-cluster","service":"web"}""", 400, "ClusterNotFoundException", "Cluster not found" },
        { "ListServiceDeployments", """{"cluster":"svc-bad"}""", 400, Ipe, "service" },
        { "ListServiceDeployments", """{"cluster":"svc-bad","service":"web","maxResults":0}""", 400, Ipe, "maxResults" },
        { "ListServiceDeployments", """{"cluster":"svc-bad","service":"web","maxResults":101}""", 400, Ipe, "maxResults" },
        { "ListServiceDeployments", """{"cluster":"svc-bad","service":"web","status":["DONE"]}""", 400, Ipe, "status[0]" },
        { "ListServiceDeployments", """{"cluster":"svc-bad","service":"web","createdAt":{"after":"yesterday"}}""", 400, Ser, "createdAt.after" },
        { "DescribeServiceDeployments", """{"serviceDeploymentArns":[]}""", 400, Ipe, "serviceDeploymentArns" },
        { "DescribeServiceDeployments", """{}""", 400, Ipe, "serviceDeploymentArns" },
        { "DescribeServiceDeployments", """{"serviceDeploymentArns":"arn:aws:ecs:us-east-1:000000000000:service-deployment/svc-bad/web/1"}""", 400, Ser, "serviceDeploymentArns" },
        { "DescribeServiceDeployments", "{\"serviceDeploymentArns\":[" + string.Join(',', Enumerable.Range(1, 21).Select(i => $"\"arn:aws:ecs:us-east-1:000000000000:service-deployment/svc-bad/web/{i}\"")) + "]}", 400, Ipe, "serviceDeploymentArns" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task ServiceRequest_Bad_AnswersTypedErrorNamingTheFieldAndChangesNothing(string operation, string body, int status, string type, string mentions)
    {
        var before = await SnapshotAsync();
        var (code, json, text) = await Ecs.CallAsync(operation, body);
        Assert.True(code == status, $"status {code}, expected {status}: {text}");
        Assert.Equal(type, json?["__type"]?.GetValue<string>());
        Assert.Contains(mentions, json?["message"]?.GetValue<string>() ?? "", StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task DescribeServices_UnknownName_IsAFailureNotAnError()
    {
        var (code, json, text) = await Ecs.CallAsync("DescribeServices", $$"""{"cluster":"{{C}}","services":["web","ghost"]}""");
        Assert.True(code == 200, text);
        Assert.Equal("web", json!["services"]![0]!["serviceName"]!.GetValue<string>());
        var failure = json["failures"]!.AsArray().Single()!;
        Assert.Equal("MISSING", failure["reason"]!.GetValue<string>());
        Assert.Equal($"arn:aws:ecs:us-east-1:000000000000:service/{C}/ghost", failure["arn"]!.GetValue<string>());
    }

    /// <summary>What a bad request must not change: the services' lists and their stable members (events and timestamps move on their own).</summary>
    private async Task<string> SnapshotAsync()
    {
        var parts = new List<string>();
        var list = await Ecs.CallAsync("ListServices", $$"""{"cluster":"{{C}}"}""");
        parts.Add("list:" + list.Text);
        var cluster = await Ecs.CallAsync("DescribeClusters", $$"""{"clusters":["{{C}}"]}""");
        parts.Add("activeServicesCount:" + cluster.Body?["clusters"]?[0]?["activeServicesCount"]);
        var described = await Ecs.CallAsync("DescribeServices", $$"""{"cluster":"{{C}}","services":["web","idle","daemon","gone","new","bad name!"],"include":["TAGS"]}""");
        foreach (var s in described.Body?["services"]?.AsArray() ?? [])
        {
            var stable = new JsonObject();
            foreach (var member in new[] { "serviceName", "status", "desiredCount", "taskDefinition", "deploymentConfiguration", "placementConstraints", "placementStrategy", "schedulingStrategy", "propagateTags", "healthCheckGracePeriodSeconds", "tags" })
            {
                stable[member] = s![member]?.DeepClone();
            }
            stable["deployments"] = new JsonArray([.. s!["deployments"]!.AsArray().Select(d => (JsonNode)new JsonObject
            {
                ["id"] = d!["id"]!.DeepClone(),
                ["status"] = d["status"]!.DeepClone(),
                ["taskDefinition"] = d["taskDefinition"]!.DeepClone(),
                ["desiredCount"] = d["desiredCount"]!.DeepClone(),
            })]);
            parts.Add(stable.ToJsonString());
        }
        parts.Add("failures:" + described.Body?["failures"]?.ToJsonString());
        var deployments = await Ecs.CallAsync("ListServiceDeployments", $$"""{"cluster":"{{C}}","service":"web"}""");
        parts.Add("deployments:" + string.Join(',', deployments.Body?["serviceDeployments"]?.AsArray().Select(d => d!["serviceDeploymentArn"]!.GetValue<string>()) ?? []));
        return string.Join('\n', parts);
    }
}
