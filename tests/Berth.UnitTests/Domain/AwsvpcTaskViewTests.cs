using System.Runtime.InteropServices;
using Berth.Agent.Runtime;
using Berth.ControlPlane.Domain;
using Berth.Core;
using Berth.Core.Agent;

namespace Berth.UnitTests.Domain;

/// <summary>An awsvpc task's address through an agent report (<see cref="TaskLifecycle.Merge"/>) into DescribeTasks' attachments and networkInterfaces.</summary>
public sealed class AwsvpcTaskViewTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
    private static readonly Arns Arns = new(new BerthIdentity());

    private static TaskRecord Task() => new()
    {
        Id = "0123456789abcdef0123456789abcdef",
        Cluster = "default",
        Family = "web",
        Revision = 1,
        InstanceId = "i1",
        DesiredStatus = TaskStates.Running,
        LastStatus = TaskStates.Provisioning,
        LaunchType = "FARGATE",
        PlatformVersion = "1.4.0",
        CapacityProviderName = "FARGATE",
        Awsvpc = new AwsvpcRecord { Subnets = ["subnet-0a1b2c3d", "subnet-0a1b2c3e"] },
        Containers = [new ContainerRecord { Name = "app" }],
    };

    [Fact]
    public void Attachment_PrecreatedThenAttachedThenDetached()
    {
        var t = Task();
        var wire = TaskViews.ToWire(Arns, t, withTags: false);
        var eni = Assert.Single(wire.Attachments!);
        Assert.Equal(("ElasticNetworkInterface", "PRECREATED"), (eni.Type, eni.Status));
        Assert.Equal(["subnetId", "networkInterfaceId"], eni.Details!.Select(d => d.Name));
        Assert.Empty(wire.Containers![0].NetworkInterfaces!);
        Assert.Equal(("FARGATE", "1.4.0", "Linux", "FARGATE"), (wire.LaunchType, wire.PlatformVersion, wire.PlatformFamily, wire.CapacityProviderName));

        var report = new TaskStatusReport { TaskArn = "x", LastStatus = "RUNNING", Sequence = 1, PrivateIpv4Address = "172.20.0.9", MacAddress = "02:42:ac:14:00:09" };
        report.Containers.Add(new ContainerStatus { Name = "app", LastStatus = "RUNNING" });
        t = TaskLifecycle.Merge(t, report, Now);
        wire = TaskViews.ToWire(Arns, t, withTags: false);
        eni = wire.Attachments![0];
        Assert.Equal("ATTACHED", eni.Status);
        var details = eni.Details!.ToDictionary(d => d.Name!, d => d.Value);
        Assert.Equal("subnet-0a1b2c3d", details["subnetId"]);
        Assert.Equal("172.20.0.9", details["privateIPv4Address"]);
        Assert.Equal("02:42:ac:14:00:09", details["macAddress"]);
        Assert.Equal("ip-172-20-0-9.ec2.internal", details["privateDnsName"]);
        var nic = Assert.Single(wire.Containers![0].NetworkInterfaces!);
        Assert.Equal((eni.Id, "172.20.0.9"), (nic.AttachmentId, nic.PrivateIpv4Address));

        // A later report without an address (the pause container is gone) keeps the last one; STOPPED detaches.
        t = TaskLifecycle.Merge(t, new TaskStatusReport { TaskArn = "x", LastStatus = "STOPPED", Sequence = 2 }, Now);
        wire = TaskViews.ToWire(Arns, t, withTags: false);
        Assert.Equal("DETACHED", wire.Attachments![0].Status);
        Assert.Equal("172.20.0.9", wire.Containers![0].NetworkInterfaces![0].PrivateIpv4Address);
    }

    [Fact]
    public void NotAwsvpc_NoAttachments()
    {
        var wire = TaskViews.ToWire(Arns, Task() with { Awsvpc = null, LaunchType = "EC2", PlatformVersion = null, CapacityProviderName = null }, withTags: false);
        Assert.Empty(wire.Attachments!);
        Assert.Null(wire.PlatformFamily);
    }

    [Theory]
    [InlineData(Architecture.X64, (ushort)62)]
    [InlineData(Architecture.Arm64, (ushort)183)]
    public void PauseImage_IsAStaticElfForTheArchitecture(Architecture arch, ushort machine)
    {
        var elf = PauseImage.Executable(arch)!;
        Assert.Equal([0x7F, (byte)'E', (byte)'L', (byte)'F', 2, 1], elf[..6]);
        Assert.Equal(machine, BitConverter.ToUInt16(elf, 18));
        var entry = BitConverter.ToUInt64(elf, 24);
        Assert.InRange(entry, 0x400000UL + 120, 0x400000UL + (ulong)elf.Length - 1); // the entry point is in the loaded code
        Assert.Null(PauseImage.Executable(Architecture.Wasm));
        using var tar = PauseImage.RootFileSystem(elf);
        using var reader = new System.Formats.Tar.TarReader(tar);
        var entryInTar = reader.GetNextEntry()!;
        Assert.Equal("pause", entryInTar.Name);
        Assert.True(entryInTar.Mode.HasFlag(UnixFileMode.OtherExecute));
        Assert.Equal(elf.Length, entryInTar.Length);
    }
}
