using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Berth.EndToEnd.Harness;
using Berth.EndToEnd.Registry;
using static Berth.EndToEnd.Api.ServiceSteps;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Software version consistency on real Docker, the real aws CLI and Berth's registry: a service deployment runs
/// the image digest its tag had when the deployment began, even after the tag is pushed again; with
/// <c>versionConsistency: disabled</c> new tasks take whatever the tag names; a forced new deployment resolves again.
/// </summary>
public sealed partial class VersionConsistencyTests : LocalServerTest
{
    private sealed record Pushed(string Digest, string ImageId);

    /// <summary>Builds a local image whose /v holds <paramref name="version"/>, tags it as <paramref name="reference"/> and pushes it with the docker CLI.</summary>
    private static async Task<Pushed> BuildAndPushAsync(LocalImages images, string run, string version, string reference)
    {
        var local = images.LocalName("vc-" + version);
        await images.BuildAsync(local, $"""
            FROM berth-test/busybox:latest
            RUN echo "{version} {run}" > /v
            """);
        await images.TagAsync(local, reference);
        var push = await DockerCli.RunAsync("push", reference);
        Assert.True(push.ExitCode == 0, push.Stdout + push.Stderr);
        var digest = PushedDigest().Match(push.Stdout);
        Assert.True(digest.Success, push.Stdout);
        // Once the tag moves on, only this digest reference names the image: remove it too at the end.
        images.Track(reference[..reference.LastIndexOf(':')] + "@" + digest.Groups[1].Value);
        var id = await DockerCli.RunAsync("image", "inspect", "-f", "{{.Id}}", local);
        Assert.Equal(0, id.ExitCode);
        return new Pushed(digest.Groups[1].Value, id.Stdout.Trim());
    }

    /// <summary>The live tasks of the service with the digest DescribeTasks reports and the image id Docker ran.</summary>
    private async Task<List<(string StartedBy, string Digest, string ImageId)>> RunningAsync(string service)
    {
        var result = new List<(string, string, string)>();
        foreach (var t in (await TasksAsync(Http, Cluster, service)).Where(t => t.Str("lastStatus") == "RUNNING" && t.Str("desiredStatus") == "RUNNING"))
        {
            var c = t["containers"]![0]!;
            var inspect = await DockerCli.RunAsync("inspect", "-f", "{{.Image}}", c.Str("runtimeId"));
            Assert.True(inspect.ExitCode == 0, inspect.Stderr);
            result.Add((t.Str("startedBy"), c.Str("imageDigest"), inspect.Stdout.Trim()));
            // DescribeTasks keeps the definition's image, as ECS does since it stopped rewriting it to the digest.
            Assert.EndsWith("/app:latest", c.Str("image"), StringComparison.Ordinal);
        }
        return result;
    }

    private async Task<JsonNode> ScaleAndWaitAsync(string service, int count)
    {
        await Aws.RunAsync("ecs", "update-service", "--cluster", Cluster, "--service", service, "--desired-count", count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return await UntilServiceAsync(Http, Cluster, service, s => IsStable(s) && s["runningCount"]!.GetValue<int>() == count, $"{service} stable at {count}");
    }

    [Fact]
    public async Task TagPushedAgainMidDeployment_ScaleOutRunsTheFirstDigest_NewDeploymentResolvesTheNewOne()
    {
        await using var images = new LocalImages(Server.RunId);
        var run = Server.RunId[..12];
        var reference = images.Track($"127.0.0.1:{Server.Port}/vc-{run}/app:latest");
        var v1 = await BuildAndPushAsync(images, run, "v1", reference);
        await EcsScenario.RegisterAsync(Aws, "vc-on", new JsonArray(new JsonObject
        {
            ["name"] = "app", ["image"] = reference, ["memory"] = 16, ["essential"] = true, ["stopTimeout"] = 2,
            ["command"] = new JsonArray([.. Sleeper.Select(s => (JsonNode)JsonValue.Create(s))]),
        }).ToJsonString());
        var created = await Aws.RunAsync("ecs", "create-service", "--cluster", Cluster, "--service-name", "vc-on", "--task-definition", "vc-on", "--desired-count", "2");
        var first = created["service"]!["deployments"]![0]!.Str("id");
        await UntilStableAsync(Http, Cluster, "vc-on");
        Assert.All(await RunningAsync("vc-on"), t => Assert.Equal((first, v1.Digest, v1.ImageId), t));

        // The tag moves (the same engine now names the new image by it, too); the deployment does not.
        var v2 = await BuildAndPushAsync(images, run, "v2", reference);
        Assert.NotEqual(v1.Digest, v2.Digest);
        await ScaleAndWaitAsync("vc-on", 4);
        var scaled = await RunningAsync("vc-on");
        Assert.Equal(4, scaled.Count);
        Assert.All(scaled, t => Assert.Equal((first, v1.Digest, v1.ImageId), t));

        // The deployment's service revision shows the digest it resolved.
        var service = await ServiceAsync(Http, Cluster, "vc-on");
        var revisions = await Aws.RunAsync("ecs", "describe-service-revisions", "--service-revision-arns", service.Str("currentServiceDeployment").Replace(":service-deployment/", ":service-revision/", StringComparison.Ordinal));
        var image = revisions["serviceRevisions"]![0]!["containerImages"]![0]!;
        Assert.Equal(("app", reference, v1.Digest), (image.Str("containerName"), image.Str("image"), image.Str("imageDigest")));

        // A new deployment resolves the tag again.
        var forced = await Aws.RunAsync("ecs", "update-service", "--cluster", Cluster, "--service", "vc-on", "--force-new-deployment");
        var second = forced["service"]!["deployments"]![0]!.Str("id");
        Assert.NotEqual(first, second);
        await UntilServiceAsync(Http, Cluster, "vc-on", s => IsStable(s) && s["deployments"]![0]!.Str("id") == second, "the forced deployment to be stable", 120);
        var redeployed = await RunningAsync("vc-on");
        Assert.Equal(4, redeployed.Count);
        Assert.All(redeployed, t => Assert.Equal((second, v2.Digest, v2.ImageId), t));
    }

    [Fact]
    public async Task VersionConsistencyDisabled_ScaleOutRunsWhatTheTagNamesNow()
    {
        await using var images = new LocalImages(Server.RunId);
        var run = Server.RunId[..12];
        var reference = images.Track($"127.0.0.1:{Server.Port}/vc-off-{run}/app:latest");
        var v1 = await BuildAndPushAsync(images, run, "v1", reference);
        await EcsScenario.RegisterAsync(Aws, "vc-off", new JsonArray(new JsonObject
        {
            ["name"] = "app", ["image"] = reference, ["memory"] = 16, ["essential"] = true, ["stopTimeout"] = 2, ["versionConsistency"] = "disabled",
            ["command"] = new JsonArray([.. Sleeper.Select(s => (JsonNode)JsonValue.Create(s))]),
        }).ToJsonString());
        await Aws.RunAsync("ecs", "create-service", "--cluster", Cluster, "--service-name", "vc-off", "--task-definition", "vc-off", "--desired-count", "2");
        await UntilStableAsync(Http, Cluster, "vc-off");
        Assert.All(await RunningAsync("vc-off"), t => Assert.Equal((v1.Digest, v1.ImageId), (t.Digest, t.ImageId)));

        var v2 = await BuildAndPushAsync(images, run, "v2", reference);
        await ScaleAndWaitAsync("vc-off", 4);
        var scaled = await RunningAsync("vc-off");
        Assert.Equal(2, scaled.Count(t => (t.Digest, t.ImageId) == (v1.Digest, v1.ImageId)));
        Assert.Equal(2, scaled.Count(t => (t.Digest, t.ImageId) == (v2.Digest, v2.ImageId)));
        // Nothing was resolved for the deployment.
        var service = await ServiceAsync(Http, Cluster, "vc-off");
        var revisions = await Aws.RunAsync("ecs", "describe-service-revisions", "--service-revision-arns", service.Str("currentServiceDeployment").Replace(":service-deployment/", ":service-revision/", StringComparison.Ordinal));
        Assert.Null(revisions["serviceRevisions"]![0]!["containerImages"]);
    }

    [GeneratedRegex(@"latest: digest: (sha256:[0-9a-f]{64})")]
    private static partial Regex PushedDigest();
}
