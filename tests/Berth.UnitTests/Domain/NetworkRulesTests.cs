using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.Domain;
using Berth.Scheduling;

namespace Berth.UnitTests.Domain;

/// <summary>ECS's checks of networkConfiguration, launch types, capacity providers and Fargate sizes (<see cref="NetworkRules"/>).</summary>
public sealed class NetworkRulesTests
{
    private static TaskDefinition Def(string mode, string? cpu = null, string? memory = null) => new()
    {
        Family = "f",
        Revision = 1,
        NetworkMode = mode,
        Cpu = cpu,
        Memory = memory,
        ContainerDefinitions = [new ContainerDefinition { Name = "a", Image = "i", PortMappings = [new PortMapping { ContainerPort = 80, HostPort = 80 }] }],
    };

    private static NetworkConfiguration Net(List<string> subnets, List<string>? groups = null, string? assign = null)
        => new() { AwsvpcConfiguration = new AwsVpcConfiguration { Subnets = subnets, SecurityGroups = groups, AssignPublicIp = assign } };

    [Theory]
    // Every combination of the ECS table (task-cpu-memory-error) at its ends and steps.
    [InlineData("256", "512")]
    [InlineData("256", "1024")]
    [InlineData("256", "2048")]
    [InlineData("512", "1024")]
    [InlineData("512", "4096")]
    [InlineData("1024", "2048")]
    [InlineData("1024", "8192")]
    [InlineData("2048", "4096")]
    [InlineData("2048", "16384")]
    [InlineData("4096", "8192")]
    [InlineData("4096", "30720")]
    [InlineData("8192", "16384")]
    [InlineData("8192", "61440")]
    [InlineData("16384", "32768")]
    [InlineData("16384", "122880")]
    [InlineData("1 vCPU", "2 GB")]
    public void FargateSizeError_ValidCombination_Null(string cpu, string memory)
        => Assert.Null(NetworkRules.FargateSizeError(cpu, memory));

    [Theory]
    [InlineData("256", "256")]
    [InlineData("256", "1536")]
    [InlineData("256", "4096")]
    [InlineData("512", "512")]
    [InlineData("512", "1536")]
    [InlineData("1024", "9216")]
    [InlineData("4096", "31744")]
    [InlineData("8192", "18432")]   // 16 GB + 2 GB: not a 4 GB step
    [InlineData("16384", "36864")]  // 32 GB + 4 GB: not an 8 GB step
    [InlineData("300", "1024")]
    [InlineData("32768", "65536")]
    public void FargateSizeError_InvalidCombination_EcsMessage(string cpu, string memory)
    {
        var error = NetworkRules.FargateSizeError(cpu, memory);
        Assert.Equal($"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid values.", error);
    }

    [Fact]
    public void Validate_AwsvpcWithoutConfiguration_Refused()
    {
        var e = Assert.Throws<AwsException>(() => NetworkRules.Validate(Def("awsvpc"), null, LaunchKind.Ec2));
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Equal("Network Configuration must be provided when networkMode 'awsvpc' is specified.", e.Message);
    }

    [Theory]
    [InlineData("bridge")]
    [InlineData("host")]
    [InlineData("none")]
    public void Validate_ConfigurationForOtherModes_Refused(string mode)
    {
        var e = Assert.Throws<AwsException>(() => NetworkRules.Validate(Def(mode), Net(["subnet-0a1b2c3d"]), LaunchKind.Ec2));
        Assert.Equal("Network Configuration is not valid for the given networkMode of this task definition.", e.Message);
        Assert.Null(NetworkRules.Validate(Def(mode), null, LaunchKind.Ec2));
    }

    [Theory]
    [InlineData("subnet-0a1b2c3d", true)]
    [InlineData("subnet-0123456789abcdef0", true)]
    [InlineData("subnet-0A1B2C3D", false)]
    [InlineData("subnet-0a1b2c3", false)]
    [InlineData("subnet-", false)]
    [InlineData("sg-0a1b2c3d", false)]
    [InlineData("", false)]
    public void Validate_SubnetIdFormat(string subnet, bool ok)
    {
        if (ok)
        {
            var r = NetworkRules.Validate(Def("awsvpc"), Net([subnet, subnet]), LaunchKind.Ec2)!;
            Assert.Equal([subnet], r.Subnets); // repeats folded
            Assert.Equal("DISABLED", r.AssignPublicIp);
        }
        else
        {
            var e = Assert.Throws<AwsException>(() => NetworkRules.Validate(Def("awsvpc"), Net([subnet]), LaunchKind.Ec2));
            Assert.Contains($"The subnet ID '{subnet}' is malformed", e.Message, StringComparison.Ordinal);
            Assert.Contains("awsvpcConfiguration.subnets", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Validate_Limits_SixteenSubnetsFiveGroups()
    {
        var sixteen = Enumerable.Range(0, 16).Select(i => $"subnet-{i:x8}").ToList();
        Assert.Equal(16, NetworkRules.Validate(Def("awsvpc"), Net(sixteen), LaunchKind.Ec2)!.Subnets.Count);
        Assert.Equal("subnets can have at most 16 items.",
            Assert.Throws<AwsException>(() => NetworkRules.Validate(Def("awsvpc"), Net([.. sixteen, "subnet-ffffffff"]), LaunchKind.Ec2)).Message);
        var six = Enumerable.Range(0, 6).Select(i => $"sg-{i:x8}").ToList();
        Assert.Equal("securityGroups can have at most 5 items.",
            Assert.Throws<AwsException>(() => NetworkRules.Validate(Def("awsvpc"), Net(["subnet-0a1b2c3d"], six), LaunchKind.Ec2)).Message);
        Assert.Equal("subnets can not be empty.",
            Assert.Throws<AwsException>(() => NetworkRules.Validate(Def("awsvpc"), Net([]), LaunchKind.Ec2)).Message);
    }

    [Fact]
    public void Validate_AssignPublicIp_OnlyForFargate()
    {
        var fargate = NetworkRules.Launch("FARGATE", null, null, Def("awsvpc", "256", "512"));
        Assert.Equal("ENABLED", NetworkRules.Validate(Def("awsvpc"), Net(["subnet-0a1b2c3d"], assign: "ENABLED"), fargate)!.AssignPublicIp);
        Assert.Equal("Assign public IP is not supported for this launch type.",
            Assert.Throws<AwsException>(() => NetworkRules.Validate(Def("awsvpc"), Net(["subnet-0a1b2c3d"], assign: "ENABLED"), LaunchKind.Ec2)).Message);
    }

    [Fact]
    public void Launch_Fargate_LatestResolvesTo140_AndNeedsACompatibleDefinition()
    {
        var k = NetworkRules.Launch("FARGATE", null, "LATEST", Def("awsvpc", "512", "1024"));
        Assert.Equal(("FARGATE", "1.4.0"), (k.LaunchType, k.PlatformVersion));
        Assert.Equal("1.3.0", NetworkRules.Launch("FARGATE", null, "1.3.0", Def("awsvpc", "512", "1024")).PlatformVersion);
        foreach (var bad in new[] { Def("bridge", "512", "1024"), Def("awsvpc"), Def("awsvpc", "512", "512") })
        {
            var e = Assert.Throws<AwsException>(() => NetworkRules.Launch("FARGATE", null, null, bad));
            Assert.Equal("InvalidParameterException", e.ErrorType);
            Assert.Equal("Task definition does not support launch_type FARGATE.", e.Message);
        }
        Assert.Equal("The platform version must be null when specifying an EC2 launch type.",
            Assert.Throws<AwsException>(() => NetworkRules.Launch(null, null, "1.4.0", Def("bridge"))).Message);
        Assert.Contains("platformVersion", Assert.Throws<AwsException>(() => NetworkRules.Launch("FARGATE", null, "9.9.9", null)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Launch_CapacityProviders_FargateOnly_NotWithLaunchType()
    {
        var k = NetworkRules.Launch(null, [new() { CapacityProvider = "FARGATE_SPOT", Weight = 1 }], null, Def("awsvpc", "256", "512"));
        Assert.True(k.IsFargate);
        Assert.Equal(["FARGATE_SPOT"], k.CapacityProviders!);
        Assert.StartsWith("Specifying both a launch type and capacity provider strategy is not supported.",
            Assert.Throws<AwsException>(() => NetworkRules.Launch("EC2", [new() { CapacityProvider = "FARGATE", Weight = 1 }], null, null)).Message, StringComparison.Ordinal);
        Assert.Contains("capacityProviderStrategy[1].capacityProvider",
            Assert.Throws<AwsException>(() => NetworkRules.Launch(null, [new() { CapacityProvider = "FARGATE", Weight = 1 }, new() { CapacityProvider = "asg", Weight = 1 }], null, null)).Message, StringComparison.Ordinal);
        Assert.Contains("base",
            Assert.Throws<AwsException>(() => NetworkRules.Launch(null, [new() { CapacityProvider = "FARGATE", Base = 1 }, new() { CapacityProvider = "FARGATE_SPOT", Base = 1 }], null, null)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Spread_BaseFirstThenByWeight()
    {
        List<CapacityProviderStrategyItem> strategy = [new() { CapacityProvider = "FARGATE", Base = 2, Weight = 1 }, new() { CapacityProvider = "FARGATE_SPOT", Weight = 3 }];
        var k = NetworkRules.Launch(null, strategy, null, null);
        var spread = NetworkRules.Spread(k, strategy, 10);
        Assert.Equal(["FARGATE", "FARGATE"], spread.Take(2));
        // The remaining 8 go 1:3.
        Assert.Equal(2, spread.Skip(2).Count(p => p == "FARGATE"));
        Assert.Equal(6, spread.Skip(2).Count(p => p == "FARGATE_SPOT"));
        Assert.All(NetworkRules.Spread(LaunchKind.Ec2, null, 3), Assert.Null);
    }

    [Fact]
    public void IsFargateCompatible_NeedsAwsvpcAndAFargateSize()
    {
        Assert.True(NetworkRules.IsFargateCompatible(Def("awsvpc", "256", "512")));
        Assert.False(NetworkRules.IsFargateCompatible(Def("awsvpc", "256", "4096")));
        Assert.False(NetworkRules.IsFargateCompatible(Def("host", "256", "512")));
        Assert.False(NetworkRules.IsFargateCompatible(Def("awsvpc")));
    }

    [Theory]
    [InlineData("awsvpc", 0)]
    [InlineData("none", 0)]
    [InlineData("host", 1)]
    [InlineData("bridge", 1)]
    public void Reservations_AwsvpcPortsTakeNothingFromTheHost(string mode, int ports)
        => Assert.Equal(ports, Reservations.For(Def(mode)).StaticPorts.Count);

    [Fact]
    public void EniIdentifiers_DerivedFromTheTask_Stable()
    {
        Assert.Matches("^eni-[0-9a-f]{17}$", NetworkRules.NetworkInterfaceId("abc"));
        Assert.Equal(NetworkRules.NetworkInterfaceId("abc"), NetworkRules.NetworkInterfaceId("abc"));
        Assert.NotEqual(NetworkRules.NetworkInterfaceId("abc"), NetworkRules.NetworkInterfaceId("abd"));
        Assert.Equal("ip-10-0-1-23.ec2.internal", NetworkRules.PrivateDnsName("10.0.1.23", "us-east-1"));
        Assert.Equal("ip-10-0-1-23.eu-west-1.compute.internal", NetworkRules.PrivateDnsName("10.0.1.23", "eu-west-1"));
    }
}
