using Berth.Aws.Ecs;
using Register = Berth.Core.Agent.Register;
using HostPolicy = Berth.Core.Agent.HostPolicy;
using Berth.UnitTests.Agents;

namespace Berth.UnitTests.Domain;

/// <summary>
/// RunTask/StartTask judge a task definition against each instance's berth.policy.* attributes: an instance whose
/// policy forbids what the task needs is skipped, and when none is left the failure names the attribute.
/// </summary>
public sealed class HostNeedsTests
{
    private static Register WithPolicy(string agentId, HostPolicy? policy)
    {
        var r = EcsFixture.Registration(agentId: agentId);
        foreach (var (k, v) in policy?.Attributes() ?? [])
        {
            r.Attributes[k] = v;
        }
        return r;
    }

    private static HostPolicy Policy(string[]? paths = null, string[]? caps = null, bool privileged = false, bool socket = false)
    {
        Assert.True(HostPolicy.TryCreate(paths ?? [], caps ?? [], socket, privileged, false, false, false, out var p, out var e), e);
        return p;
    }

    private static TaskDefinition Privileged()
    {
        var def = EcsFixture.Web();
        def.ContainerDefinitions![0].Privileged = true;
        return def;
    }

    private static TaskDefinition Mounting(string sourcePath)
    {
        var def = EcsFixture.Web();
        def.Volumes = [new Volume { Name = "data", Host = new HostVolumeProperties { SourcePath = sourcePath } }];
        def.ContainerDefinitions![0].MountPoints = [new MountPoint { SourceVolume = "data", ContainerPath = "/data" }];
        return def;
    }

    [Fact]
    public async Task RunTask_OnlyInstanceForbidsPrivileged_FailureNamesTheAttributeAndTheOption()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(WithPolicy("agent-1", HostPolicy.Default), CancellationToken.None);
        await f.AddTaskDefinitionAsync("priv", 1, Privileged());

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"priv"}""");

        Assert.Equal(0, run.GetProperty("tasks").GetArrayLength());
        var failure = run.GetProperty("failures")[0];
        Assert.Equal("ATTRIBUTE:berth.policy.privileged", failure.GetProperty("reason").GetString());
        Assert.Contains(":container-instance/default/", failure.GetProperty("arn").GetString(), StringComparison.Ordinal);
        var detail = failure.GetProperty("detail").GetString();
        Assert.Contains("container web: privileged", detail, StringComparison.Ordinal);
        Assert.Contains("berth.policy.privileged=denied", detail, StringComparison.Ordinal);
        Assert.Contains("berth agent --allow-privileged", detail, StringComparison.Ordinal);
        Assert.Equal(0, f.State.Tasks.Count);
    }

    [Fact]
    public async Task RunTask_OneInstanceAllows_TasksGoOnlyThere()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(WithPolicy("agent-1", HostPolicy.Default), CancellationToken.None);
        var allowing = (await f.Gateway.RegisterAsync(WithPolicy("agent-2", Policy(privileged: true)), CancellationToken.None)).Key;
        await f.AddTaskDefinitionAsync("priv", 1, Privileged());

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"priv","count":4}""");

        Assert.Equal(0, run.GetProperty("failures").GetArrayLength());
        var instances = run.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("containerInstanceArn").GetString()!).Distinct().ToList();
        Assert.Equal(allowing[(allowing.IndexOf('/') + 1)..], Assert.Single(instances)[(instances[0].LastIndexOf('/') + 1)..]);
    }

    [Fact]
    public async Task RunTask_InstanceWithoutPolicyAttributes_NotJudged()
    {
        // Registered without berth.policy.* (RegisterContainerInstance, an older agent): its agent decides.
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(EcsFixture.Registration(), CancellationToken.None);
        await f.AddTaskDefinitionAsync("priv", 1, Privileged());

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"priv"}""");

        Assert.Equal(1, run.GetProperty("tasks").GetArrayLength());
    }

    [Theory]
    [InlineData("/srv/data/app", new[] { "/srv/data" }, false, null)]
    [InlineData("/srv/database", new[] { "/srv/data" }, false, "ATTRIBUTE:berth.policy.host-paths")]
    [InlineData("/etc", new string[0], false, "ATTRIBUTE:berth.policy.host-paths")]
    [InlineData("/var/run/docker.sock", new[] { "/" }, false, "ATTRIBUTE:berth.policy.docker-socket")]
    [InlineData("/run", new[] { "/" }, false, "ATTRIBUTE:berth.policy.docker-socket")]
    [InlineData("/var/run/docker.sock", new[] { "/var/run" }, true, null)]
    [InlineData("/srv/data/../../etc", new[] { "/srv/data" }, false, "ATTRIBUTE:berth.policy.host-paths")]
    public async Task RunTask_HostPaths_JudgedByPrefixAndSocket(string sourcePath, string[] prefixes, bool socket, string? reason)
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(WithPolicy("agent-1", Policy(prefixes, socket: socket)), CancellationToken.None);
        await f.AddTaskDefinitionAsync("vol", 1, Mounting(sourcePath));

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"vol"}""");

        if (reason is null)
        {
            Assert.Equal(1, run.GetProperty("tasks").GetArrayLength());
            return;
        }
        var failure = run.GetProperty("failures")[0];
        Assert.Equal(reason, failure.GetProperty("reason").GetString());
        Assert.Contains(sourcePath, failure.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunTask_Capabilities_EachAddedOneMustBeAllowed()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(WithPolicy("agent-1", Policy(caps: ["NET_ADMIN"])), CancellationToken.None);
        var def = EcsFixture.Web();
        def.ContainerDefinitions![0].LinuxParameters = new LinuxParameters { Capabilities = new KernelCapabilities { Add = ["NET_ADMIN", "SYS_TIME"] } };
        await f.AddTaskDefinitionAsync("caps", 1, def);

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"caps"}""");

        var failure = run.GetProperty("failures")[0];
        Assert.Equal("ATTRIBUTE:berth.policy.capabilities", failure.GetProperty("reason").GetString());
        Assert.Contains("--allow-capability SYS_TIME", failure.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartTask_OnAnInstanceThatForbids_FailureNamesTheAttribute()
    {
        await using var f = new EcsFixture();
        var key = (await f.Gateway.RegisterAsync(WithPolicy("agent-1", HostPolicy.Default), CancellationToken.None)).Key;
        await f.AddTaskDefinitionAsync("priv", 1, Privileged());

        var start = await f.CallAsync("StartTask", $$"""{"taskDefinition":"priv","containerInstances":["{{key[(key.IndexOf('/') + 1)..]}}"]}""");

        Assert.Equal("ATTRIBUTE:berth.policy.privileged", start.GetProperty("failures")[0].GetProperty("reason").GetString());
    }

    private static TaskDefinition Unconfined(params string[] options)
    {
        var def = EcsFixture.Web();
        def.ContainerDefinitions![0].DockerSecurityOptions = [.. options];
        return def;
    }

    [Fact]
    public async Task RunTask_UnconfinedSecurityOptionOnADefaultInstance_FailureNamesTheAttributeTheOptionAndTheFlag()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(WithPolicy("agent-1", HostPolicy.Default), CancellationToken.None);
        await f.AddTaskDefinitionAsync("sec", 1, Unconfined("no-new-privileges", "seccomp=unconfined"));

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"sec"}""");

        Assert.Equal(0, run.GetProperty("tasks").GetArrayLength());
        var failure = run.GetProperty("failures")[0];
        Assert.Equal("ATTRIBUTE:berth.policy.unconfined", failure.GetProperty("reason").GetString());
        Assert.Equal("container web: dockerSecurityOptions seccomp=unconfined is not allowed by the container instance's host policy (berth.policy.unconfined=denied; berth agent --allow-unconfined)",
            failure.GetProperty("detail").GetString());
        Assert.Equal(0, f.State.Tasks.Count);
    }

    [Fact]
    public async Task RunTask_UnconfinedSecurityOption_PlacedOnlyOnTheInstanceThatAllowsIt()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(WithPolicy("agent-1", Policy(privileged: true)), CancellationToken.None);
        var allowing = (await f.Gateway.RegisterAsync(WithPolicy("agent-2", HostPolicy.Default with { Unconfined = true }), CancellationToken.None)).Key;
        await f.AddTaskDefinitionAsync("sec", 1, Unconfined("apparmor:unconfined"));

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"sec","count":3}""");

        Assert.Equal(0, run.GetProperty("failures").GetArrayLength());
        var instances = run.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("containerInstanceArn").GetString()!).Distinct().ToList();
        Assert.Equal(allowing[(allowing.IndexOf('/') + 1)..], Assert.Single(instances)[(instances[0].LastIndexOf('/') + 1)..]);
    }

    [Fact]
    public async Task RunTask_ConfiningSecurityOptions_NeedNothing()
    {
        await using var f = new EcsFixture();
        await f.Gateway.RegisterAsync(WithPolicy("agent-1", HostPolicy.Default), CancellationToken.None);
        await f.AddTaskDefinitionAsync("nnp", 1, Unconfined("no-new-privileges", "apparmor=docker-default"));

        var run = await f.CallAsync("RunTask", """{"taskDefinition":"nnp"}""");

        Assert.Equal(0, run.GetProperty("failures").GetArrayLength());
        Assert.Equal(1, run.GetProperty("tasks").GetArrayLength());
    }
}
