using Berth.Aws.Ecs;
using Berth.Core;

namespace Berth.ControlPlane.Domain;

/// <summary>Cluster records to and from the wire shape.</summary>
public static class ClusterViews
{
    /// <summary>The stored part of the wire shape (every member; the operation drops what a call does not include and adds the counts).</summary>
    public static Cluster ToWire(Arns arns, ClusterRecord c) => new()
    {
        ClusterArn = arns.Cluster(c.Name),
        ClusterName = c.Name,
        Status = c.Status,
        Tags = InstanceViews.ToWire(c.Tags),
        Settings = c.Settings?.Select(s => new ClusterSetting { Name = s.Name, Value = s.Value }).ToList(),
        Configuration = ToWire(c.Configuration),
        CapacityProviders = c.CapacityProviders?.ToList(),
        DefaultCapacityProviderStrategy = c.DefaultCapacityProviderStrategy?.Select(s => new CapacityProviderStrategyItem { CapacityProvider = s.CapacityProvider, Weight = s.Weight, Base = s.Base }).ToList(),
        ServiceConnectDefaults = c.ServiceConnectNamespace is { } ns ? new ClusterServiceConnectDefaults { Namespace = ns } : null,
    };

    public static ClusterConfiguration? ToWire(ClusterConfigurationRecord? c) => c is null ? null : new ClusterConfiguration
    {
        ExecuteCommandConfiguration = c.ExecuteCommand is not { } e ? null : new ExecuteCommandConfiguration
        {
            KmsKeyId = e.KmsKeyId,
            Logging = e.Logging,
            LogConfiguration = e.Log is not { } l ? null : new ExecuteCommandLogConfiguration
            {
                CloudWatchLogGroupName = l.CloudWatchLogGroupName,
                CloudWatchEncryptionEnabled = l.CloudWatchEncryptionEnabled,
                S3BucketName = l.S3BucketName,
                S3EncryptionEnabled = l.S3EncryptionEnabled,
                S3KeyPrefix = l.S3KeyPrefix,
            },
        },
        ManagedStorageConfiguration = c.ManagedStorage is not { } m ? null : new ManagedStorageConfiguration { KmsKeyId = m.KmsKeyId, FargateEphemeralStorageKmsKeyId = m.FargateEphemeralStorageKmsKeyId },
    };

    public static ClusterConfigurationRecord? FromWire(ClusterConfiguration? c) => c is null ? null : new ClusterConfigurationRecord
    {
        ExecuteCommand = c.ExecuteCommandConfiguration is not { } e ? null : new ExecuteCommandRecord
        {
            KmsKeyId = e.KmsKeyId,
            Logging = e.Logging,
            Log = e.LogConfiguration is not { } l ? null : new ExecuteCommandLogRecord
            {
                CloudWatchLogGroupName = l.CloudWatchLogGroupName,
                CloudWatchEncryptionEnabled = l.CloudWatchEncryptionEnabled,
                S3BucketName = l.S3BucketName,
                S3EncryptionEnabled = l.S3EncryptionEnabled,
                S3KeyPrefix = l.S3KeyPrefix,
            },
        },
        ManagedStorage = c.ManagedStorageConfiguration is not { } m ? null : new ManagedStorageRecord { KmsKeyId = m.KmsKeyId, FargateEphemeralStorageKmsKeyId = m.FargateEphemeralStorageKmsKeyId },
    };

    public static List<ClusterSettingRecord>? FromWire(IEnumerable<ClusterSetting>? settings) => settings?.Select(s => new ClusterSettingRecord(s.Name, s.Value)).ToList();

    public static List<CapacityProviderStrategyRecord>? FromWire(IEnumerable<CapacityProviderStrategyItem>? items)
        => items?.Select(s => new CapacityProviderStrategyRecord(s.CapacityProvider, s.Weight, s.Base)).ToList();

    /// <summary>A cluster stored in the wire shape (formats 1 and 2) as a record.</summary>
    public static ClusterRecord FromWire(Cluster c, string name) => new()
    {
        Name = c.ClusterName ?? name,
        Status = c.Status ?? "ACTIVE",
        Tags = InstanceViews.FromWire(c.Tags),
        Settings = FromWire(c.Settings),
        Configuration = FromWire(c.Configuration),
        CapacityProviders = c.CapacityProviders?.ToList(),
        DefaultCapacityProviderStrategy = FromWire(c.DefaultCapacityProviderStrategy),
        ServiceConnectNamespace = c.ServiceConnectDefaults?.Namespace,
    };
}
