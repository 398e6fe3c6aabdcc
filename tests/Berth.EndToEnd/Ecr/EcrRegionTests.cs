using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;
using Berth.EndToEnd.Registry;

namespace Berth.EndToEnd.Ecr;

/// <summary>
/// ECR per region on one Berth, with the aws CLI, boto3, docker and skopeo: the same repository name in two regions
/// holding different images, ARNs and URIs of each region, /v2/ REGION/NAME reaching another region, and a push in
/// us-east-1 replicated to us-west-2 by a replication rule.
/// </summary>
public sealed class EcrRegionTests() : RegistryServerTest()
{
    private AwsCli In(string region)
    {
        var aws = new AwsCli(Server.Endpoint);
        aws.Environment["AWS_DEFAULT_REGION"] = region;
        return aws;
    }

    private static string PushedDigest(CommandResult push)
    {
        Assert.True(push.ExitCode == 0, push.Stdout + push.Stderr);
        var at = push.Stdout.IndexOf("digest: sha256:", StringComparison.Ordinal);
        Assert.True(at >= 0, push.Stdout);
        return push.Stdout.Substring(at + "digest: ".Length, 71);
    }

    [Fact]
    public async Task SameNameInTwoRegions_DockerReachesEachAndReplicationCopiesAPushToUsWest2()
    {
        await SkopeoCli.RequireAsync();
        var run = Server.RunId[..12];
        var host = RegistryApi.Host;
        var east = In("us-east-1");
        var west = In("us-west-2");

        // The same name in both regions, each with the region's ARN and a URI that reaches it.
        var eastRepo = (await east.RunAsync("ecr", "create-repository", "--repository-name", "twin"))["repository"]!;
        var westRepo = (await west.RunAsync("ecr", "create-repository", "--repository-name", "twin", "--region", "us-west-2"))["repository"]!;
        Assert.Equal("arn:aws:ecr:us-east-1:000000000000:repository/twin", eastRepo["repositoryArn"]!.GetValue<string>());
        Assert.Equal("arn:aws:ecr:us-west-2:000000000000:repository/twin", westRepo["repositoryArn"]!.GetValue<string>());
        Assert.Equal($"localhost:{Server.Port}/twin", eastRepo["repositoryUri"]!.GetValue<string>());
        Assert.Equal($"localhost:{Server.Port}/us-west-2/twin", westRepo["repositoryUri"]!.GetValue<string>());
        Assert.Equal($"http://localhost:{Server.Port}/us-west-2", (await west.RunAsync("ecr", "get-authorization-token"))["authorizationData"]![0]!["proxyEndpoint"]!.GetValue<string>());

        // Different images under the one name: busybox in us-east-1 (the short name), a derived image in us-west-2.
        var eastImage = Images.Track($"{host}/twin:1");
        await Images.TagAsync("berth-test/busybox:latest", eastImage);
        var eastDigest = PushedDigest(await DockerCli.RunAsync("push", eastImage));
        var derived = Images.LocalName("twin-west");
        await Images.BuildAsync(derived, $"FROM berth-test/busybox:latest\nRUN echo west-{run} > /region.txt\n");
        var westImage = Images.Track($"{host}/us-west-2/twin:1");
        await Images.TagAsync(derived, westImage);
        var westDigest = PushedDigest(await DockerCli.RunAsync("push", westImage));
        Assert.NotEqual(eastDigest, westDigest);
        Assert.Equal(eastDigest, (await east.RunAsync("ecr", "describe-images", "--repository-name", "twin"))["imageDetails"]![0]!["imageDigest"]!.GetValue<string>());
        Assert.Equal(westDigest, (await west.RunAsync("ecr", "describe-images", "--repository-name", "twin"))["imageDetails"]![0]!["imageDigest"]!.GetValue<string>());
        // skopeo reads each region's manifest by its route.
        Assert.Equal(westDigest, JsonNode.Parse(await SkopeoCli.RunAsync("inspect", "--tls-verify=false", $"docker://{host}/us-west-2/twin:1"))!["Digest"]!.GetValue<string>());
        Assert.Equal(eastDigest, JsonNode.Parse(await SkopeoCli.RunAsync("inspect", "--tls-verify=false", $"docker://{host}/twin:1"))!["Digest"]!.GetValue<string>());
        // A region nobody pushed to has nothing; reading it does not create it.
        Assert.NotEqual(0, (await SkopeoCli.TryRunAsync("inspect", "--tls-verify=false", $"docker://{host}/eu-north-1/twin:1")).ExitCode);

        // Replication us-east-1 → us-west-2 for repositories starting with "rep-RUN".
        var prefix = $"rep-{run}";
        var configure = await Boto3.RunAsync("ecr_regions.py", Server.Endpoint, "configure", prefix);
        Assert.True(configure.ExitCode == 0, configure.Stderr);
        Assert.Equal("us-west-2", configure.Json["east"]!["rules"]![0]!["destinations"]![0]!["region"]!.GetValue<string>());
        Assert.Empty(configure.Json["west"]!["rules"]!.AsArray());

        // A push the rule does not match (twin:2, before the matching one): it stays in us-east-1.
        var eastTwo = Images.Track($"{host}/twin:2");
        await Images.TagAsync(derived, eastTwo);
        PushedDigest(await DockerCli.RunAsync("push", eastTwo));
        var source = Images.Track($"{host}/{prefix}/app:7");
        await Images.TagAsync(derived, source);
        var digest = PushedDigest(await DockerCli.RunAsync("push", source));
        var wait = await Boto3.RunAsync("ecr_regions.py", Server.Endpoint, "wait", $"{prefix}/app", "7", digest, "30");
        Assert.True(wait.ExitCode == 0, wait.Stderr);
        var result = wait.Json;
        Assert.True(result["replica"] is not null, $"us-west-2 did not show {digest} within 30 s: {result}");
        Assert.Equal(digest, result["replica"]!["digest"]!.GetValue<string>());
        Assert.Equal(["7"], result["replica"]!["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal($"arn:aws:ecr:us-west-2:000000000000:repository/{prefix}/app", result["westRepository"]!["arn"]!.GetValue<string>());
        Assert.Equal($"localhost:{Server.Port}/us-west-2/{prefix}/app", result["westRepository"]!["uri"]!.GetValue<string>());
        var statuses = result["statuses"]!.AsArray();
        Assert.Equal("us-west-2", statuses[0]!["region"]!.GetValue<string>());
        Assert.Equal("COMPLETE", statuses[0]!["status"]!.GetValue<string>());
        Assert.Equal("FAILED", statuses[1]!["status"]!.GetValue<string>());
        Assert.Equal("CROSS_ACCOUNT_REPLICATION_NOT_SUPPORTED", statuses[1]!["failureCode"]!.GetValue<string>());

        // docker pulls the replica through the us-west-2 route (every local name of the image removed first, so the
        // layers really come from the registry), and skopeo sees the same digest.
        var replica = Images.Track($"{host}/us-west-2/{prefix}/app:7");
        foreach (var name in new[] { source, westImage, eastTwo, derived })
        {
            await DockerCli.RunAsync("rmi", name);
        }
        var pull = await DockerCli.RunAsync("pull", replica);
        Assert.True(pull.ExitCode == 0, pull.Stdout + pull.Stderr);
        Assert.Contains("Digest: " + digest, pull.Stdout, StringComparison.Ordinal);
        var output = await DockerCli.RunAsync("run", "--rm", "--network", "none", "--label", Server.Label, replica, "cat", "/region.txt");
        Assert.True(output.ExitCode == 0, output.Stderr);
        Assert.Equal($"west-{run}\n", output.Stdout);
        Assert.Equal(digest, JsonNode.Parse(await SkopeoCli.RunAsync("inspect", "--tls-verify=false", $"docker://{replica}"))!["Digest"]!.GetValue<string>());

        // The push the rule did not match was not copied (the worker takes pushes in order, and a later one is done).
        var westTwin = (await west.RunAsync("ecr", "describe-images", "--repository-name", "twin"))["imageDetails"]!.AsArray();
        Assert.Equal([westDigest], westTwin.Select(i => i!["imageDigest"]!.GetValue<string>()));
        Assert.Equal(2, (await east.RunAsync("ecr", "describe-images", "--repository-name", "twin"))["imageDetails"]!.AsArray().Count);

        // A restart keeps both regions' registries.
        await Server.KillAsync();
        await Server.RestartAsync();
        Assert.Equal(westDigest, (await west.RunAsync("ecr", "describe-images", "--repository-name", "twin"))["imageDetails"]![0]!["imageDigest"]!.GetValue<string>());
        Assert.Equal(digest, (await west.RunAsync("ecr", "describe-images", "--repository-name", $"{prefix}/app"))["imageDetails"]![0]!["imageDigest"]!.GetValue<string>());
        Assert.Equal(eastDigest, (await east.RunAsync("ecr", "describe-images", "--repository-name", "twin", "--image-ids", "imageTag=1"))["imageDetails"]![0]!["imageDigest"]!.GetValue<string>());
    }
}
