using System.Globalization;

namespace Berth.Core.Agent;

/// <summary>
/// A task definition's <c>ephemeralStorage.sizeInGiB</c> on Berth: as Fargate documents it, the space the task has for
/// its containers' writable layers, taken as a minimum. Docker's overlay2 can only cap a container's writable layer on
/// an XFS data root with project quotas, so Berth sets no cap; instead placement only picks an instance whose Docker
/// data root filesystem is at least that large (the agent reports <see cref="Attribute"/>), and the agent refuses to
/// start the task (TaskFailedToStart) when the data root has less free space than that at start. Space is checked,
/// not reserved: two tasks may count on the same free GiB.
/// </summary>
public static class EphemeralSpace
{
    /// <summary>The size, in whole GiB, of the filesystem that holds the agent's Docker data root.</summary>
    public const string Attribute = "berth.ephemeral-storage-gib";

    private const long Gib = 1L << 30;

    /// <summary>Total and free whole GiB of the filesystem holding <paramref name="path"/>; null when it cannot be read.</summary>
    public static (long TotalGib, long FreeGib)? Measure(string path)
    {
        try
        {
            var drive = new DriveInfo(path);
            return (drive.TotalSize / Gib, drive.AvailableFreeSpace / Gib);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The attribute's value for a filesystem of <paramref name="totalGib"/> GiB.</summary>
    public static string Format(long totalGib) => totalGib.ToString(CultureInfo.InvariantCulture);

    /// <summary>The size an instance's attribute reports, or null when it reports none (or nonsense).</summary>
    public static long? Parse(string? value)
        => long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var gib) ? gib : null;
}
