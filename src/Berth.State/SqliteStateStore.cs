using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Berth.State;

/// <summary>
/// The embedded store: one SQLite file in WAL mode with synchronous=FULL, so a commit that returned
/// survives <c>kill -9</c>. Writes are serialised on one connection; the change feed is an in-memory log
/// of recent changes (a watcher that falls behind it relists).
/// </summary>
public sealed class SqliteStateStore : IStateStore
{
    private const int RetainedChanges = 50_000;

    private readonly SqliteConnection _db;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly LinkedList<StoreChange> _log = new();
    private readonly List<(string Prefix, Channel<StoreChange> Channel)> _watchers = [];
    private long _revision;
    private long _oldestRetained;

    private SqliteStateStore(SqliteConnection db, long revision)
    {
        _db = db;
        _revision = revision;
        _oldestRetained = revision;
    }

    public long Revision => Volatile.Read(ref _revision);

    // A rowid table: documents are ~1 KiB, too large for WITHOUT ROWID to pack well.
    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>; ":memory:" for a throw-away store.</summary>
    public static SqliteStateStore Open(string path)
    {
        if (path != ":memory:")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        Exec(db, "PRAGMA journal_mode=WAL;");
        Exec(db, "PRAGMA synchronous=FULL;");
        Exec(db, "PRAGMA busy_timeout=5000;");
        Exec(db, "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, rev INTEGER NOT NULL);");
        Exec(db, "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), rev INTEGER NOT NULL);");
        Exec(db, "INSERT OR IGNORE INTO meta (id, rev) VALUES (1, 0);");
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT rev FROM meta WHERE id = 1";
        var rev = (long)cmd.ExecuteScalar()!;
        return new SqliteStateStore(db, rev);
    }

    public async ValueTask<StoreEntry?> GetAsync(string key, CancellationToken ct = default)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT value, rev FROM kv WHERE key = $k";
            cmd.Parameters.AddWithValue("$k", key);
            using var r = cmd.ExecuteReader();
            return r.Read() ? new StoreEntry(key, (byte[])r[0], r.GetInt64(1)) : null;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<IReadOnlyList<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            using var cmd = _db.CreateCommand();
            // Range scan on the primary key: prefix <= key < prefix + U+FFFF.
            cmd.CommandText = "SELECT key, value, rev FROM kv WHERE key >= $lo AND key < $hi ORDER BY key";
            cmd.Parameters.AddWithValue("$lo", prefix);
            cmd.Parameters.AddWithValue("$hi", prefix + "\uffff");
            using var r = cmd.ExecuteReader();
            var list = new List<StoreEntry>();
            while (r.Read())
            {
                list.Add(new StoreEntry(r.GetString(0), (byte[])r[1], r.GetInt64(2)));
            }
            return list;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<long> CommitAsync(IReadOnlyList<StoreWrite> writes, CancellationToken ct = default)
    {
        if (writes.Count == 0)
        {
            return Revision;
        }
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        List<StoreChange> changes;
        long rev;
        try
        {
            using var tx = _db.BeginTransaction();
            foreach (var w in writes.Where(w => w.ExpectedRevision is not null))
            {
                using var get = _db.CreateCommand();
                get.Transaction = tx;
                get.CommandText = "SELECT rev FROM kv WHERE key = $k";
                get.Parameters.AddWithValue("$k", w.Key);
                var actual = get.ExecuteScalar() is long l ? l : 0;
                if (actual != w.ExpectedRevision)
                {
                    throw new StoreConflictException(w.Key, w.ExpectedRevision, actual);
                }
            }
            rev = _revision + 1;
            changes = new List<StoreChange>(writes.Count);
            foreach (var w in writes)
            {
                using var cmd = _db.CreateCommand();
                cmd.Transaction = tx;
                if (w.Value is null)
                {
                    cmd.CommandText = "DELETE FROM kv WHERE key = $k";
                }
                else
                {
                    cmd.CommandText = "INSERT INTO kv (key, value, rev) VALUES ($k, $v, $r) ON CONFLICT(key) DO UPDATE SET value = excluded.value, rev = excluded.rev";
                    cmd.Parameters.AddWithValue("$v", w.Value);
                    cmd.Parameters.AddWithValue("$r", rev);
                }
                cmd.Parameters.AddWithValue("$k", w.Key);
                cmd.ExecuteNonQuery();
                changes.Add(new StoreChange(w.Key, w.Value, rev));
            }
            using (var meta = _db.CreateCommand())
            {
                meta.Transaction = tx;
                meta.CommandText = "UPDATE meta SET rev = $r WHERE id = 1";
                meta.Parameters.AddWithValue("$r", rev);
                meta.ExecuteNonQuery();
            }
            tx.Commit();
            Volatile.Write(ref _revision, rev);
            lock (_log)
            {
                foreach (var c in changes)
                {
                    _log.AddLast(c);
                }
                while (_log.Count > RetainedChanges)
                {
                    _oldestRetained = _log.First!.Value.Revision;
                    _log.RemoveFirst();
                }
                foreach (var (prefix, channel) in _watchers)
                {
                    foreach (var c in changes)
                    {
                        if (c.Key.StartsWith(prefix, StringComparison.Ordinal))
                        {
                            channel.Writer.TryWrite(c);
                        }
                    }
                }
            }
        }
        finally
        {
            _lock.Release();
        }
        return rev;
    }

    public async IAsyncEnumerable<StoreChange> WatchAsync(string prefix, long afterRevision, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var channel = Channel.CreateUnbounded<StoreChange>(new UnboundedChannelOptions { SingleReader = true });
        List<StoreChange> backlog;
        lock (_log)
        {
            if (afterRevision < _oldestRetained)
            {
                throw new StoreCompactedException(afterRevision, _oldestRetained);
            }
            backlog = _log.Where(c => c.Revision > afterRevision && c.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            _watchers.Add((prefix, channel));
        }
        try
        {
            foreach (var c in backlog)
            {
                yield return c;
            }
            await foreach (var c in channel.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                yield return c;
            }
        }
        finally
        {
            lock (_log)
            {
                _watchers.RemoveAll(w => w.Channel == channel);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_log)
        {
            foreach (var (_, channel) in _watchers)
            {
                channel.Writer.TryComplete();
            }
        }
        _db.Dispose();
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
