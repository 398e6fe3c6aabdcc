using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Api;

/// <summary>
/// RegisterTaskDefinition refusing what Berth cannot run or ECS refuses: each case answers 400 with the error type
/// and a message naming the member, and registers nothing.
/// </summary>
public sealed class TaskDefinitionBadInputTests(TaskDefinitionBadInputTests.Server server) : IClassFixture<TaskDefinitionBadInputTests.Server>
{
    /// <summary>One server (no agent) for every case: a refused request changes nothing, so cases cannot disturb each other.</summary>
    public sealed class Server : IAsyncLifetime
    {
        private BerthServer? _server;

        public EcsHttp Ecs { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            _server = await BerthServer.StartAsync("server");
            Ecs = new EcsHttp(_server.Endpoint);
        }

        public async ValueTask DisposeAsync()
        {
            Ecs?.Dispose();
            if (_server is not null)
            {
                await _server.DisposeAsync();
            }
        }
    }

    private readonly EcsHttp? _ecs = server.Ecs;

    private const string A = "\"name\":\"a\",\"image\":\"i\",\"memory\":16";
    private const string B = "\"name\":\"b\",\"image\":\"i\",\"memory\":16";

    /// <summary>A definition of family opts-bad; @A and @B in <paramref name="containers"/> stand for containers a and b's basics.</summary>
    private static string Def(string containers, string extra = "")
        => "{\"family\":\"opts-bad\",\"containerDefinitions\":[" + containers.Replace("@A", A, StringComparison.Ordinal).Replace("@B", B, StringComparison.Ordinal) + "]" + extra + "}";

    // (body, __type, text the message must contain)
    public static TheoryData<string, string, string> Cases => new()
    {
        // Not until a secrets store exists.
        { Def("""{@A,"secrets":[{"name":"PW","valueFrom":"arn:aws:ssm:us-east-1:000000000000:parameter/pw"}]}"""), "ClientException", "containerDefinitions[0].secrets" },
        { Def("""{@A,"repositoryCredentials":{"credentialsParameter":"arn:aws:secretsmanager:us-east-1:000000000000:secret:x"}}"""), "ClientException", "containerDefinitions[0].repositoryCredentials" },
        // Features Berth does not have.
        { Def("""{@A,"environmentFiles":[{"value":"arn:aws:s3:::b/e.env","type":"s3"}]}"""), "ClientException", "containerDefinitions[0].environmentFiles" },
        { Def("""{@A,"firelensConfiguration":{"type":"fluentbit"}}"""), "ClientException", "containerDefinitions[0].firelensConfiguration" },
        { Def("""{@A,"credentialSpecs":["credentialspecdomainless:arn:aws:s3:::b/c.json"]}"""), "ClientException", "containerDefinitions[0].credentialSpecs" },
        { Def("""{@A,"resourceRequirements":[{"type":"GPU","value":"1"}]}"""), "ClientException", "containerDefinitions[0].resourceRequirements" },
        { Def("""{@A,"restartPolicy":{"enabled":true}}"""), "ClientException", "containerDefinitions[0].restartPolicy" },
        { Def("""{@A,"dockerSecurityOptions":["credentialspec:file://x.json"]}"""), "ClientException", "containerDefinitions[0].dockerSecurityOptions[0]" },
        { Def("""{@A,"portMappings":[{"containerPortRange":"8000-8010"}]}"""), "ClientException", "containerDefinitions[0].portMappings[0].containerPortRange" },
        { Def("{@A}", ""","proxyConfiguration":{"containerName":"a"}"""), "ClientException", "proxyConfiguration" },
        { Def("{@A}", ""","inferenceAccelerators":[{"deviceName":"d","deviceType":"eia2.medium"}]"""), "ClientException", "inferenceAccelerators" },
        { Def("{@A}", ""","enableFaultInjection":true"""), "ClientException", "enableFaultInjection" },
        { Def("{@A}", ""","ephemeralStorage":{"sizeInGiB":5}"""), "ClientException", "ephemeralStorage.sizeInGiB" },
        { Def("{@A}", ""","runtimePlatform":{"operatingSystemFamily":"WINDOWS_SERVER_2022_CORE"}"""), "ClientException", "runtimePlatform.operatingSystemFamily" },
        // Volumes.
        { Def("{@A}", ""","volumes":[{"name":"v"},{"name":"v"}]"""), "ClientException", "volumes[1].name" },
        { Def("{@A}", ""","volumes":[{"host":{"sourcePath":"/tmp"}}]"""), "ClientException", "volumes[0].name" },
        { Def("{@A}", ""","volumes":[{"name":"bad.name"}]"""), "ClientException", "volumes[0].name" },
        { Def("{@A}", ""","volumes":[{"name":"v","host":{"sourcePath":"relative/dir"}}]"""), "ClientException", "volumes[0].host.sourcePath" },
        { Def("{@A}", ""","volumes":[{"name":"v","dockerVolumeConfiguration":{"scope":"shared","autoprovision":true}}]"""), "ClientException", "volumes[0].dockerVolumeConfiguration" },
        { Def("{@A}", ""","volumes":[{"name":"v","efsVolumeConfiguration":{"fileSystemId":"fs-1"}}]"""), "ClientException", "volumes[0].efsVolumeConfiguration" },
        { Def("{@A}", ""","volumes":[{"name":"v","fsxWindowsFileServerVolumeConfiguration":{"fileSystemId":"fs-1","rootDirectory":"x","authorizationConfig":{"credentialsParameter":"c","domain":"d"}}}]"""), "ClientException", "volumes[0].fsxWindowsFileServerVolumeConfiguration" },
        { Def("{@A}", ""","volumes":[{"name":"v","configuredAtLaunch":true}]"""), "ClientException", "volumes[0].configuredAtLaunch" },
        // References to what does not exist.
        { Def("""{@A,"mountPoints":[{"sourceVolume":"ghost","containerPath":"/x"}]}"""), "ClientException", "Unknown volume 'ghost'" },
        { Def("""{@A,"mountPoints":[{"sourceVolume":"v","containerPath":"x"}]}""", ""","volumes":[{"name":"v"}]"""), "ClientException", "containerDefinitions[0].mountPoints[0].containerPath" },
        { Def("""{@A,"volumesFrom":[{"sourceContainer":"ghost"}]}"""), "ClientException", "containerDefinitions[0].volumesFrom[0].sourceContainer" },
        { Def("""{@A,"volumesFrom":[{"sourceContainer":"a"}]}"""), "ClientException", "containerDefinitions[0].volumesFrom[0].sourceContainer" },
        { Def("""{@A,"links":["ghost:db"]}"""), "ClientException", "containerDefinitions[0].links[0]" },
        { Def("""{@A,"links":["b"]},{@B}""", ""","networkMode":"host" """), "ClientException", "containerDefinitions[0].links" },
        { Def("""{@A,"volumesFrom":[{"sourceContainer":"b"}]},{@B,"links":["a"]}"""), "ClientException", "cycle (a -> b -> a)" },
        // Port clashes inside a task.
        { Def("""{@A,"portMappings":[{"containerPort":80},{"containerPort":80}]}"""), "InvalidParameterException", "Container port 80 is used in more than one port mapping for container a" },
        { Def("""{@A,"portMappings":[{"containerPort":80,"hostPort":8080}]},{@B,"portMappings":[{"containerPort":81,"hostPort":8080}]}"""), "ClientException", "containerDefinitions[1].portMappings[0].hostPort" },
        // Options with values Docker or ECS would refuse.
        { Def("""{@A,"linuxParameters":{"capabilities":{"add":["FLY"]}}}"""), "ClientException", "containerDefinitions[0].linuxParameters.capabilities.add[0]" },
        { Def("""{@A,"linuxParameters":{"devices":[{"hostPath":"dev/null"}]}}"""), "ClientException", "containerDefinitions[0].linuxParameters.devices[0].hostPath" },
        { Def("""{@A,"linuxParameters":{"tmpfs":[{"containerPath":"/t","size":0}]}}"""), "ClientException", "containerDefinitions[0].linuxParameters.tmpfs[0].size" },
        { Def("""{@A,"linuxParameters":{"sharedMemorySize":0}}"""), "ClientException", "containerDefinitions[0].linuxParameters.sharedMemorySize" },
        { Def("""{@A,"linuxParameters":{"swappiness":101}}"""), "ClientException", "containerDefinitions[0].linuxParameters.swappiness" },
        { Def("""{"name":"a","image":"i","memoryReservation":16,"linuxParameters":{"maxSwap":64}}"""), "ClientException", "containerDefinitions[0].linuxParameters.maxSwap" },
        { Def("""{@A,"ulimits":[{"name":"nofile","softLimit":10,"hardLimit":5}]}"""), "ClientException", "containerDefinitions[0].ulimits[0].softLimit" },
        { Def("""{@A,"ulimits":[{"name":"wings","softLimit":1,"hardLimit":1}]}"""), "InvalidParameterException", "containerDefinitions[0].ulimits[0].name" },
        { Def("""{@A,"extraHosts":[{"hostname":"db","ipAddress":"not-an-ip"}]}"""), "ClientException", "containerDefinitions[0].extraHosts[0].ipAddress" },
        { Def("""{@A,"dnsServers":["dns.example"]}"""), "ClientException", "containerDefinitions[0].dnsServers[0]" },
        { Def("""{@A,"systemControls":[{"namespace":"net.ipv4.ip_forward","value":"1"}]}""", ""","networkMode":"host" """), "ClientException", "containerDefinitions[0].systemControls[0].namespace" },
        { Def("""{@A,"hostname":"h"}""", ""","networkMode":"awsvpc" """), "ClientException", "containerDefinitions[0].hostname" },
        { Def("""{@A,"startTimeout":-1}"""), "ClientException", "containerDefinitions[0].startTimeout" },
        { Def("{@A}", ""","pidMode":"shared" """), "InvalidParameterException", "pidMode" },
        { Def("{@A}", ""","ipcMode":"private" """), "InvalidParameterException", "ipcMode" },
        { Def("""{@A,"versionConsistency":"sometimes"}"""), "InvalidParameterException", "containerDefinitions[0].versionConsistency" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Register_Refused_NamesTheMemberAndRegistersNothing(string body, string type, string mentions)
    {
        var (code, json, text) = await _ecs!.SendAsync(EcsHttp.Prefix + "RegisterTaskDefinition", body);
        Assert.True(code == 400, $"status {code}: {text}");
        Assert.Equal(type, json?["__type"]?.GetValue<string>());
        Assert.Contains(mentions, json?["message"]?.GetValue<string>() ?? "", StringComparison.Ordinal);
        var families = await _ecs.CallAsync("ListTaskDefinitionFamilies", """{"status":"ALL"}""");
        Assert.DoesNotContain("opts-bad", families.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_EveryWorkingOption_IsStoredAndDescribedBack()
    {
        var body = Def("""
            {@A,"privileged":true,"readonlyRootFilesystem":true,"dnsServers":["10.0.0.2"],"dnsSearchDomains":["x.internal"],
             "extraHosts":[{"hostname":"db","ipAddress":"10.1.2.3"}],"volumesFrom":[{"sourceContainer":"b","readOnly":true}],
             "systemControls":[{"namespace":"net.core.somaxconn","value":"512"}],"interactive":true,"pseudoTerminal":true,
             "dockerSecurityOptions":["no-new-privileges"],"startTimeout":30,"versionConsistency":"disabled",
             "restartPolicy":{"enabled":false},
             "linuxParameters":{"capabilities":{"add":["NET_ADMIN"]},"initProcessEnabled":true,"sharedMemorySize":64,"maxSwap":0,"swappiness":10,
               "tmpfs":[{"containerPath":"/t","size":8}],"devices":[{"hostPath":"/dev/null"}]}},
            {@B,"mountPoints":[{"sourceVolume":"v","containerPath":"/v"}]}
            """, ""","volumes":[{"name":"v"}],"pidMode":"task","ipcMode":"task","ephemeralStorage":{"sizeInGiB":30},"runtimePlatform":{"operatingSystemFamily":"LINUX","cpuArchitecture":"X86_64"}""").Replace("opts-bad", "opts-good", StringComparison.Ordinal);
        var r = await _ecs!.CallAsync("RegisterTaskDefinition", body);
        Assert.True(r.Status == 200, r.Text);
        var d = await _ecs.CallAsync("DescribeTaskDefinition", """{"taskDefinition":"opts-good"}""");
        foreach (var expected in new[] { "\"privileged\":true", "\"pidMode\":\"task\"", "\"ipcMode\":\"task\"", "\"sharedMemorySize\":64", "\"sourceContainer\":\"b\"", "\"sizeInGiB\":30", "\"cpuArchitecture\":\"X86_64\"" })
        {
            Assert.Contains(expected, d.Text, StringComparison.Ordinal);
        }
    }
}
