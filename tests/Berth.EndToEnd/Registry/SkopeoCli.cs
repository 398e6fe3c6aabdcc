using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>The real skopeo (no signature policy check: the images are built here).</summary>
public static class SkopeoCli
{
    private static readonly Lazy<Task<bool>> Available = new(async () =>
    {
        try
        {
            return (await Processes.RunAsync("skopeo", ["--version"], timeout: TimeSpan.FromSeconds(20))).ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    /// <summary>Skips when skopeo is missing, except under CI=true, where that is a failure.</summary>
    public static async Task RequireAsync()
    {
        if (await Available.Value)
        {
            return;
        }
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail("CI=true but skopeo is not installed: ./test.sh should have installed it.");
        }
        Assert.Skip("skopeo is not installed.");
    }

    public static Task<CommandResult> TryRunAsync(params string[] args)
        => Processes.RunAsync("skopeo", ["--insecure-policy", .. args], timeout: TimeSpan.FromMinutes(3));

    /// <summary>Runs a skopeo command that must succeed; returns its stdout.</summary>
    public static async Task<string> RunAsync(params string[] args)
    {
        var r = await TryRunAsync(args);
        Assert.True(r.ExitCode == 0, $"skopeo {string.Join(' ', args)} failed ({r.ExitCode}):\n{r.Stdout}\n{r.Stderr}");
        return r.Stdout;
    }
}
