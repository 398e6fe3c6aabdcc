using System.Buffers.Text;

namespace Berth.LoadBalancer.DataPlane.Fast;

/// <summary>
/// HTTP/1.1 message heads as bytes: where a head ends, header names compared without allocating, and the one-pass
/// rewrite of a request head into what the target gets (hop-by-hop headers dropped, ALB's X-Forwarded-* and trace id
/// set). Anything it does not fully understand is refused (<c>false</c>) so that the request goes to Kestrel, whose
/// parser is the strict one.
/// </summary>
internal static class HttpWire
{
    public static ReadOnlySpan<byte> Crlf => "\r\n"u8;

    /// <summary>Offset just past the blank line ending the head in <paramref name="data"/>, or -1.</summary>
    public static int HeadEnd(ReadOnlySpan<byte> data)
    {
        var i = data.IndexOf("\r\n\r\n"u8);
        return i < 0 ? -1 : i + 4;
    }

    public static bool NameIs(ReadOnlySpan<byte> name, ReadOnlySpan<byte> lowerAscii)
    {
        if (name.Length != lowerAscii.Length)
        {
            return false;
        }
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if ((uint)(c - 'A') <= 'Z' - 'A')
            {
                c = (byte)(c | 0x20);
            }
            if (c != lowerAscii[i])
            {
                return false;
            }
        }
        return true;
    }

    public static bool TokenIs(ReadOnlySpan<byte> value, ReadOnlySpan<byte> lowerAscii) => NameIs(value.Trim(" \t"u8), lowerAscii);

    /// <summary>Splits one header line (without its CRLF) into a name and a trimmed value; false when it is not a plain header line.</summary>
    public static bool SplitHeader(ReadOnlySpan<byte> line, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        var colon = line.IndexOf((byte)':');
        name = default;
        value = default;
        if (colon <= 0)
        {
            return false;
        }
        name = line[..colon];
        // No whitespace inside or around a field name, no control characters in the line (obs-fold, bare CR/LF, NUL).
        if (name.IndexOfAny(" \t"u8) >= 0 || line.IndexOfAnyInRange((byte)0, (byte)8) >= 0 || line.IndexOfAnyInRange((byte)10, (byte)31) >= 0 || line.Contains((byte)127))
        {
            return false;
        }
        value = line[(colon + 1)..].Trim(" \t"u8);
        return true;
    }

    public static bool TryParseLength(ReadOnlySpan<byte> value, out long length)
    {
        length = -1;
        if (value.Length == 0 || value.Length > 18)
        {
            return false;
        }
        foreach (var c in value)
        {
            if ((uint)(c - '0') > 9)
            {
                return false;
            }
        }
        return Utf8Parser.TryParse(value, out length, out var used) && used == value.Length;
    }

    /// <summary>Appends <paramref name="s"/> (ASCII) at <paramref name="at"/>.</summary>
    public static int Put(Span<byte> dest, int at, ReadOnlySpan<byte> s)
    {
        s.CopyTo(dest[at..]);
        return at + s.Length;
    }
}

/// <summary>
/// Follows a chunked body as it streams past (sizes, data, the last chunk and trailers) without changing it, to find
/// where the message ends.
/// </summary>
internal struct ChunkedScanner
{
    private enum State
    {
        Size,
        Extension,
        SizeLf,
        Data,
        DataCr,
        DataLf,
        TrailerStart,
        Trailer,
        TrailerLf,
        EndLf,
        Done,
        Invalid,
    }

    private State _state;
    private long _remaining;
    private int _digits;

    public readonly bool Done => _state == State.Done;
    public readonly bool Invalid => _state == State.Invalid;

    /// <summary>Consumes <paramref name="data"/>; returns how many bytes belong to the body (less than all only when it ended).</summary>
    public int Scan(ReadOnlySpan<byte> data)
    {
        var i = 0;
        while (i < data.Length && _state is not (State.Done or State.Invalid))
        {
            var c = data[i];
            switch (_state)
            {
                case State.Size:
                    var hex = HexValue(c);
                    if (hex >= 0)
                    {
                        if (++_digits > 15)
                        {
                            _state = State.Invalid;
                            break;
                        }
                        _remaining = (_remaining << 4) | (uint)hex;
                    }
                    else if (_digits == 0)
                    {
                        _state = State.Invalid;
                    }
                    else if (c == '\r')
                    {
                        _state = State.SizeLf;
                    }
                    else if (c is (byte)';' or (byte)' ' or (byte)'\t')
                    {
                        _state = State.Extension;
                    }
                    else
                    {
                        _state = State.Invalid;
                    }
                    i++;
                    break;
                case State.Extension:
                    if (c == '\r')
                    {
                        _state = State.SizeLf;
                    }
                    else if (c == '\n')
                    {
                        _state = State.Invalid;
                    }
                    i++;
                    break;
                case State.SizeLf:
                    if (c != '\n')
                    {
                        _state = State.Invalid;
                        break;
                    }
                    i++;
                    _digits = 0;
                    _state = _remaining == 0 ? State.TrailerStart : State.Data;
                    break;
                case State.Data:
                    var take = (int)Math.Min(_remaining, data.Length - i);
                    i += take;
                    _remaining -= take;
                    if (_remaining == 0)
                    {
                        _state = State.DataCr;
                    }
                    break;
                case State.DataCr:
                    _state = c == '\r' ? State.DataLf : State.Invalid;
                    i++;
                    break;
                case State.DataLf:
                    _state = c == '\n' ? State.Size : State.Invalid;
                    i++;
                    break;
                case State.TrailerStart:
                    // A bare LF ends no line here either (as after sizes and data): waiting for a CR that never comes would hang the relay.
                    _state = c switch { (byte)'\r' => State.EndLf, (byte)'\n' => State.Invalid, _ => State.Trailer };
                    i++;
                    break;
                case State.Trailer:
                    if (c == '\r')
                    {
                        _state = State.TrailerLf;
                    }
                    else if (c == '\n')
                    {
                        _state = State.Invalid;
                    }
                    i++;
                    break;
                case State.TrailerLf:
                    _state = c == '\n' ? State.TrailerStart : State.Invalid;
                    i++;
                    break;
                case State.EndLf:
                    _state = c == '\n' ? State.Done : State.Invalid;
                    i++;
                    break;
                default:
                    break;
            }
        }
        return i;
    }

    private static int HexValue(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        _ => -1,
    };
}
