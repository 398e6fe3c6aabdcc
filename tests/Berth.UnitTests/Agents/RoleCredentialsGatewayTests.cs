using Berth.Aws.Auth;
using Berth.ControlPlane.Agents;
using Berth.ControlPlane.Domain;
using Berth.ControlPlane.Hosting;
using Berth.ControlPlane.State;
using Berth.Core.Agent;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.UnitTests.Agents;

/// <summary>
/// The gateway's side of task role credentials: an agent gets them only for its own instance's tasks that have a
/// role and have not stopped; the RunTask override wins over the definition's role.
/// </summary>
public sealed class RoleCredentialsGatewayTests
{
    private static (AgentGatewayService Gateway, TaskRoleCredentialIssuer Issuer) Gateway(EcsFixture f)
    {
        var issuer = new TaskRoleCredentialIssuer(Enumerable.Repeat((byte)7, 32).ToArray(), TimeProvider.System);
        var gateway = new AgentGatewayService(f.State, f.Tasks, new InstanceLifecycle(f.State, f.Arns, TimeProvider.System, NullLogger<InstanceLifecycle>.Instance), f.Arns,
            TimeProvider.System, new ControlPlaneOptions { DataDirectory = "/nonexistent" }, new NoRegistryCredentials(), NullLogger<AgentGatewayService>.Instance,
            roleCredentials: issuer);
        return (gateway, issuer);
    }

    [Fact]
    public async Task RoleCredentialsFor_OwnLiveTaskOnly_OverrideWins_NoneOnceStopped()
    {
        await using var f = new EcsFixture();
        var (gateway, issuer) = Gateway(f);
        var a = (await gateway.RegisterAsync(EcsFixture.Registration("agent-a"), CancellationToken.None)).Key;
        var def = EcsFixture.Web();
        def.TaskRoleArn = "arn:aws:iam::000000000000:role/app";
        await f.AddTaskDefinitionAsync("web", 1, def);
        await f.AddTaskDefinitionAsync("plain", 1, EcsFixture.Web());
        var withRole = (await f.CallAsync("RunTask", """{"taskDefinition":"web"}""")).GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        var overridden = (await f.CallAsync("RunTask", """{"taskDefinition":"web","overrides":{"taskRoleArn":"arn:aws:iam::000000000000:role/other"}}"""))
            .GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        var plain = (await f.CallAsync("RunTask", """{"taskDefinition":"plain"}""")).GetProperty("tasks")[0].GetProperty("taskArn").GetString()!;
        // A second instance joins after the tasks were placed: none of them is its.
        var b = (await gateway.RegisterAsync(EcsFixture.Registration("agent-b"), CancellationToken.None)).Key;

        var request = new RoleCredentialsRequest { TaskArns = { withRole, overridden, plain, "arn:aws:ecs:us-east-1:000000000000:task/default/nope" } };
        var mine = gateway.RoleCredentialsFor(a, request).Credentials.ToDictionary(c => c.TaskArn);
        Assert.Equal(new[] { withRole, overridden }.Order(StringComparer.Ordinal), mine.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("arn:aws:iam::000000000000:role/app", mine[withRole].RoleArn);
        Assert.Equal("arn:aws:iam::000000000000:role/other", mine[overridden].RoleArn);
        var verified = issuer.Verify(mine[withRole].AccessKeyId, mine[withRole].SessionToken);
        Assert.Equal(withRole, verified.TaskArn);
        Assert.Equal(mine[withRole].SecretAccessKey, verified.SecretAccessKey);
        Assert.Empty(gateway.RoleCredentialsFor(b, request).Credentials);

        await f.CallAsync("StopTask", $$"""{"task":"{{withRole}}"}""");
        var stoppedKey = EcsState.ScopedId("default", withRole[(withRole.LastIndexOf('/') + 1)..]);
        var report = new TaskStatusReport { TaskArn = withRole, LastStatus = "STOPPED", Sequence = 1 };
        await f.Tasks.ApplyReportAsync(a, report, CancellationToken.None);
        Assert.True(f.State.Tasks.Find(stoppedKey)!.IsStopped);
        Assert.Equal([overridden], gateway.RoleCredentialsFor(a, request).Credentials.Select(c => c.TaskArn));
    }
}
