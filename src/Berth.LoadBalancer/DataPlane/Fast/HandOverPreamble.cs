using System.Buffers;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Connections;

namespace Berth.LoadBalancer.DataPlane.Fast;

/// <summary>
/// Kestrel's side of a hand-over: the first line on the private socket, <c>BERTH {client ip} {client port} {listener
/// port}\n</c>, becomes the connection's remote and local endpoints, so that the rules, X-Forwarded-For and the
/// listener lookup see what they would had Kestrel accepted the client itself.
/// </summary>
internal static class HandOverPreamble
{
    private const int MaxLength = 128;

    public static ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        var input = connection.Transport.Input;
        while (true)
        {
            var read = await input.ReadAsync(connection.ConnectionClosed).ConfigureAwait(false);
            var buffer = read.Buffer;
            if (buffer.PositionOf((byte)'\n') is { } newline)
            {
                var line = Encoding.ASCII.GetString(buffer.Slice(0, newline).ToArray());
                input.AdvanceTo(buffer.GetPosition(1, newline));
                if (!TryParse(line, out var remote, out var localPort))
                {
                    return;
                }
                connection.RemoteEndPoint = remote;
                connection.LocalEndPoint = new IPEndPoint(IPAddress.Loopback, localPort);
                break;
            }
            if (read.IsCompleted || buffer.Length > MaxLength)
            {
                return;
            }
            input.AdvanceTo(buffer.Start, buffer.End);
        }
        await next(connection).ConfigureAwait(false);
    };

    /// <summary>The first line the fast path writes for a connection it hands over.</summary>
    internal static byte[] Line(IPAddress remote, int remotePort, int listenerPort)
        => Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"BERTH {remote} {remotePort} {listenerPort}\n"));

    internal static bool TryParse(string line, out IPEndPoint remote, out int localPort)
    {
        remote = new IPEndPoint(IPAddress.None, 0);
        localPort = 0;
        var parts = line.Split(' ');
        if (parts.Length != 4 || parts[0] != "BERTH" || !IPAddress.TryParse(parts[1], out var ip)
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || !int.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out localPort)
            || port > IPEndPoint.MaxPort || localPort > IPEndPoint.MaxPort)
        {
            return false;
        }
        remote = new IPEndPoint(ip, port);
        return true;
    }
}
