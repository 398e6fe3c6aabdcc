using System.Net;

namespace Berth.Aws.Auth;

/// <summary>Which authentication mode a server starts in, and whether it may start at all.</summary>
public static class AuthStartup
{
    /// <summary>
    /// The mode for <paramref name="requested"/> ("none", "sigv4", or empty for the default) on
    /// <paramref name="listenHost"/>: the default is sigv4 unless every address it listens on is loopback.
    /// Returns an error message instead when the choice is not valid or sigv4 has no credential to accept.
    /// </summary>
    public static (AuthMode Mode, string? Error) Decide(string? requested, string listenHost, int credentialCount, string dataDirectory)
    {
        AuthMode mode;
        switch ((requested ?? "").Trim().ToLowerInvariant())
        {
            case "":
                mode = IsLoopback(listenHost) ? AuthMode.None : AuthMode.SigV4;
                break;
            case "none":
                mode = AuthMode.None;
                break;
            case "sigv4":
                mode = AuthMode.SigV4;
                break;
            default:
                return (AuthMode.None, $"--auth '{requested}' is not one of none, sigv4.");
        }
        if (mode == AuthMode.SigV4 && credentialCount == 0)
        {
            var why = string.IsNullOrWhiteSpace(requested)
                ? $"Berth listens on {listenHost}, which is not a loopback address, so every AWS request must be signed (SigV4), and there is no credential to accept yet."
                : "--auth sigv4 needs at least one credential, and there is none yet.";
            return (mode, $"{why} Create one with:\n  berth credentials create --name admin --data {dataDirectory}\nthen start again (or pass --auth none to accept any request, which lets anyone who reaches the port control every host).");
        }
        return (mode, null);
    }

    /// <summary>True for localhost and addresses in 127.0.0.0/8 or ::1; false for 0.0.0.0, ::, * and everything else.</summary>
    public static bool IsLoopback(string host)
        => host is "localhost" || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
}
