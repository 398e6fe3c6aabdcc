using System.Collections.Frozen;

namespace Berth.Aws.Auth;

/// <summary>
/// The server's view of DATA/credentials.json: an immutable snapshot swapped whole when the file changes.
/// The file's size and time are looked at once a second, and at once when a request names an unknown key
/// (so `berth credentials create` works on a running server without a restart).
/// </summary>
public sealed class CredentialStore
{
    private readonly string _path;
    private readonly Lock _lock = new();
    private FrozenDictionary<string, AwsCredential> _byKey = FrozenDictionary<string, AwsCredential>.Empty;
    private (DateTime Time, long Length) _stamp = (DateTime.MinValue, -1);
    private long _checkedAt = long.MinValue;

    public CredentialStore(string path)
    {
        _path = path;
        Refresh(force: true);
    }

    public string Path => _path;

    public int Count
    {
        get
        {
            Refresh(force: false);
            return _byKey.Count;
        }
    }

    public AwsCredential? Find(string accessKeyId)
    {
        Refresh(force: false);
        if (_byKey.TryGetValue(accessKeyId, out var c))
        {
            return c;
        }
        Refresh(force: true);
        return _byKey.GetValueOrDefault(accessKeyId);
    }

    private void Refresh(bool force)
    {
        var now = Environment.TickCount64;
        if (!force && now - Volatile.Read(ref _checkedAt) < 1000)
        {
            return;
        }
        lock (_lock)
        {
            _checkedAt = now;
            var info = new FileInfo(_path);
            var stamp = info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1L);
            if (stamp == _stamp)
            {
                return;
            }
            try
            {
                _byKey = CredentialFile.Load(_path).ToFrozenDictionary(c => c.AccessKeyId, StringComparer.Ordinal);
                _stamp = stamp;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                // Keep the last good snapshot; a half-edited file must not lock everyone out.
            }
        }
    }
}
