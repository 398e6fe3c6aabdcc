using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Berth.State;

/// <summary>
/// The embedded store: one SQLite file in WAL mode with synchronous=FULL, so a commit that returned
/// survives <c>kill -9</c>. Concurrent commits are group-committed by one writer thread (one SQLite
/// transaction and one fsync for every batch queued meanwhile); reads use their own connections.
/// The change feed is an in-memory log of recent changes (a watcher that falls behind it relists).
/// </summary>
public sealed class SqliteStateStore : IStateStore
{
    // Each retained change holds its document's bytes; a watcher that falls further behind relists. Kept small:
    // 4,096 changes is seconds of a busy control plane, and at ~1 KiB a document 50,000 cost 60+ MiB of heap.
    private const int RetainedChanges = 4_096;

    // Bounds on one group: enough to amortise the fsync, small enough that one group's latency stays short.
    private const int MaxGroupCommits = 1024;
    private const int MaxGroupWrites = 16_384;

    private readonly string _connectionString;
    private readonly bool _sharedConnection;
    private readonly Writer _writer;
    private readonly Thread _writerThread;

    // The commit queue: callers enqueue under the lock; whoever owns the writer (_writerActive) takes
    // everything queued as one group. The owner is the caller itself when the writer was idle (no thread
    // hop for a lone commit), else the writer thread.
    private readonly Queue<CommitRequest> _queue = new();
    private readonly object _queueLock = new();
    private bool _writerActive;
    private bool _closing;

    // A test hook: while reset, the writer thread leaves queued commits in the queue.
    private readonly ManualResetEventSlim _writerGate = new(initialState: true);

    private readonly ConcurrentBag<Reader> _readers = [];

    private readonly LinkedList<StoreChange> _log = new();
    private readonly List<(string Prefix, Channel<StoreChange> Channel)> _watchers = [];
    private long _revision;
    private long _oldestRetained;
    private long _commitGroups;
    private int _disposed;

    private SqliteStateStore(string connectionString, bool sharedConnection, SqliteConnection db, long revision)
    {
        _connectionString = connectionString;
        _sharedConnection = sharedConnection;
        _writer = new Writer(db);
        _revision = revision;
        _oldestRetained = revision;
        _writerThread = new Thread(WriterLoop) { IsBackground = true, Name = "berth-state-writer" };
        _writerThread.Start();
    }

    public long Revision => Volatile.Read(ref _revision);

    /// <summary>How many SQLite transactions (each one fsync) have committed writes; at most one per <see cref="CommitAsync"/> call, fewer when callers were grouped.</summary>
    public long CommitGroups => Interlocked.Read(ref _commitGroups);

    // A rowid table: documents are ~1 KiB, too large for WITHOUT ROWID to pack well.
    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>; ":memory:" for a throw-away store.</summary>
    public static SqliteStateStore Open(string path)
    {
        var inMemory = path == ":memory:";
        if (!inMemory)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        var db = new SqliteConnection(connectionString);
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
        // An in-memory database exists only on its one connection, so reads share it with the writer.
        return new SqliteStateStore(connectionString, inMemory, db, rev);
    }

    public ValueTask<StoreEntry?> GetAsync(string key, CancellationToken ct = default)
        => Read(ct, r =>
        {
            r.Get.Parameters[0].Value = key;
            using var reader = r.Get.ExecuteReader();
            return reader.Read() ? new StoreEntry(key, (byte[])reader[0], reader.GetInt64(1)) : null;
        });

    public ValueTask<IReadOnlyList<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default)
        => Read<IReadOnlyList<StoreEntry>>(ct, r =>
        {
            // Range scan on the primary key: prefix <= key < prefix + U+FFFF.
            r.List.Parameters[0].Value = prefix;
            r.List.Parameters[1].Value = prefix + "\uffff";
            using var reader = r.List.ExecuteReader();
            var list = new List<StoreEntry>();
            while (reader.Read())
            {
                list.Add(new StoreEntry(reader.GetString(0), (byte[])reader[1], reader.GetInt64(2)));
            }
            return list;
        });

    /// <summary>
    /// Queues the writes and completes once they are durable, with their own revision; the caller commits them
    /// itself when the writer is idle, else the writer thread does, grouped with the other batches queued.
    /// Cancellation counts only while the batch is still queued: a batch the writer has taken is written, and
    /// the call then completes normally.
    /// </summary>
    public ValueTask<long> CommitAsync(IReadOnlyList<StoreWrite> writes, CancellationToken ct = default)
    {
        if (writes.Count == 0)
        {
            return ValueTask.FromResult(Revision);
        }
        if (ct.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<long>(ct);
        }
        var request = new CommitRequest(writes);
        var lead = false;
        lock (_queueLock)
        {
            if (_closing)
            {
                return ValueTask.FromException<long>(new ObjectDisposedException(nameof(SqliteStateStore)));
            }
            _queue.Enqueue(request);
            if (!_writerActive)
            {
                if (_writerGate.IsSet)
                {
                    _writerActive = lead = true;
                }
                else
                {
                    Monitor.Pulse(_queueLock);
                }
            }
        }
        if (lead)
        {
            // The writer was idle: commit here, on the caller's thread, with whatever else queued meanwhile;
            // commits arriving while this one runs are left to the writer thread.
            CommitNextGroup();
            lock (_queueLock)
            {
                _writerActive = false;
                if (_queue.Count > 0 || _closing)
                {
                    Monitor.Pulse(_queueLock);
                }
            }
        }
        return ct.CanBeCanceled ? WaitCancellableAsync(request, ct) : new ValueTask<long>(request.Completion.Task);

        static async ValueTask<long> WaitCancellableAsync(CommitRequest request, CancellationToken ct)
        {
            using var registration = ct.Register(static (state, token) => ((CommitRequest)state!).TryCancel(token), request);
            return await request.Completion.Task.ConfigureAwait(false);
        }
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

    /// <summary>Stops taking commits, writes every batch already queued, then closes the file.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }
        lock (_queueLock)
        {
            _closing = true;
            Monitor.PulseAll(_queueLock);
        }
        _writerGate.Set();
        _writerThread.Join();
        lock (_log)
        {
            foreach (var (_, channel) in _watchers)
            {
                channel.Writer.TryComplete();
            }
        }
        while (_readers.TryTake(out var r))
        {
            r.Dispose();
        }
        lock (_writer)
        {
            _writer.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Test hook: queued commits stay queued until the returned handle is disposed.</summary>
    internal IDisposable HoldWriter()
    {
        _writerGate.Reset();
        return new GateRelease(_writerGate);
    }

    // Reads run synchronously on the caller's thread; failures travel in the returned ValueTask, as from an async method.
    private ValueTask<T> Read<T>(CancellationToken ct, Func<Reader, T> read)
    {
        if (ct.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(ct);
        }
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            return ValueTask.FromResult(ReadOnConnection(read));
        }
        catch (Exception e)
        {
            return ValueTask.FromException<T>(e);
        }
    }

    private T ReadOnConnection<T>(Func<Reader, T> read)
    {
        if (_sharedConnection)
        {
            lock (_writer)
            {
                return read(_writer.Reads);
            }
        }
        // WAL: a read transaction started now sees every commit that has returned, and never waits for the writer.
        if (!_readers.TryTake(out var r))
        {
            r = Reader.Open(_connectionString);
        }
        try
        {
            return read(r);
        }
        finally
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                r.Dispose();
            }
            else
            {
                _readers.Add(r);
            }
        }
    }

    private void WriterLoop()
    {
        while (true)
        {
            lock (_queueLock)
            {
                while (_queue.Count == 0 || _writerActive)
                {
                    if (_closing && _queue.Count == 0 && !_writerActive)
                    {
                        return; // closing and drained
                    }
                    Monitor.Wait(_queueLock);
                }
                _writerActive = true;
            }
            _writerGate.Wait();
            CommitNextGroup();
            lock (_queueLock)
            {
                _writerActive = false;
            }
        }
    }

    // Called by the writer's current owner only.
    private void CommitNextGroup()
    {
        var group = new List<CommitRequest>();
        lock (_queueLock)
        {
            var writes = 0;
            while (group.Count < MaxGroupCommits && writes < MaxGroupWrites && _queue.TryDequeue(out var request))
            {
                if (request.TryTake())
                {
                    group.Add(request);
                    writes += request.Writes.Count;
                }
            }
        }
        if (group.Count > 0)
        {
            CommitGroup(group);
        }
    }

    private void CommitGroup(List<CommitRequest> group)
    {
        var baseRevision = Volatile.Read(ref _revision);
        var rev = baseRevision;
        var changes = new List<StoreChange>();
        var outcomes = new (long Revision, Exception? Error)[group.Count];
        try
        {
            lock (_writer)
            {
                _writer.Begin.ExecuteNonQuery();
                for (var i = 0; i < group.Count; i++)
                {
                    var writes = group[i].Writes;
                    var mark = changes.Count;
                    _writer.Savepoint.ExecuteNonQuery();
                    try
                    {
                        // Preconditions see the earlier callers of this group: they come first in revision order.
                        foreach (var w in writes)
                        {
                            if (w.ExpectedRevision is { } expected)
                            {
                                _writer.GetRevision.Parameters[0].Value = w.Key;
                                var actual = _writer.GetRevision.ExecuteScalar() is long l ? l : 0;
                                if (actual != expected)
                                {
                                    throw new StoreConflictException(w.Key, expected, actual);
                                }
                            }
                        }
                        var next = rev + 1;
                        foreach (var w in writes)
                        {
                            if (w.Value is null)
                            {
                                _writer.Delete.Parameters[0].Value = w.Key;
                                _writer.Delete.ExecuteNonQuery();
                            }
                            else
                            {
                                _writer.Upsert.Parameters[0].Value = w.Key;
                                _writer.Upsert.Parameters[1].Value = w.Value;
                                _writer.Upsert.Parameters[2].Value = next;
                                _writer.Upsert.ExecuteNonQuery();
                            }
                            changes.Add(new StoreChange(w.Key, w.Value, next));
                        }
                        _writer.Release.ExecuteNonQuery();
                        rev = next;
                        outcomes[i] = (next, null);
                    }
                    catch (Exception e)
                    {
                        // This caller alone fails; the group goes on without its writes.
                        _writer.RollbackTo.ExecuteNonQuery();
                        _writer.Release.ExecuteNonQuery();
                        changes.RemoveRange(mark, changes.Count - mark);
                        outcomes[i] = (0, e);
                    }
                }
                if (rev == baseRevision)
                {
                    _writer.Rollback.ExecuteNonQuery();
                }
                else
                {
                    _writer.SetMetaRevision.Parameters[0].Value = rev;
                    _writer.SetMetaRevision.ExecuteNonQuery();
                    _writer.Commit.ExecuteNonQuery(); // the group's one fsync (WAL, synchronous=FULL)
                    Interlocked.Increment(ref _commitGroups);
                }
            }
        }
        catch (Exception e)
        {
            // The transaction itself failed (disk full, I/O error): nothing of the group is durable.
            lock (_writer)
            {
                _writer.TryRollback();
            }
            foreach (var request in group)
            {
                request.Completion.TrySetException(e);
            }
            return;
        }
        Volatile.Write(ref _revision, rev);
        Publish(changes);
        for (var i = 0; i < group.Count; i++)
        {
            var (revision, error) = outcomes[i];
            if (error is null)
            {
                group[i].Completion.TrySetResult(revision);
            }
            else
            {
                group[i].Completion.TrySetException(error);
            }
        }
    }

    private void Publish(List<StoreChange> changes)
    {
        if (changes.Count == 0)
        {
            return;
        }
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

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static SqliteCommand Prepare(SqliteConnection db, string sql, params string[] parameters)
    {
        var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var p in parameters)
        {
            cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
        }
        cmd.Prepare();
        return cmd;
    }

    private sealed class CommitRequest(IReadOnlyList<StoreWrite> writes)
    {
        private const int Queued = 0, Taken = 1, Cancelled = 2;
        private int _state;

        public IReadOnlyList<StoreWrite> Writes { get; } = writes;

        // Completed on the writer thread; continuations must not run there.
        public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Queued) == Queued;

        public void TryCancel(CancellationToken token)
        {
            if (Interlocked.CompareExchange(ref _state, Cancelled, Queued) == Queued)
            {
                Completion.TrySetCanceled(token);
            }
        }
    }

    /// <summary>
    /// The writer connection and its prepared statements; used by the writer thread only (and by reads of an
    /// in-memory store, under its lock). Transactions are plain BEGIN/COMMIT statements so the prepared
    /// commands need no SqliteTransaction object.
    /// </summary>
    private sealed class Writer : IDisposable
    {
        private readonly SqliteConnection _db;
        private readonly SqliteCommand[] _all;

        public Writer(SqliteConnection db)
        {
            _db = db;
            GetRevision = Prepare(db, "SELECT rev FROM kv WHERE key = $k", "$k");
            Upsert = Prepare(db, "INSERT INTO kv (key, value, rev) VALUES ($k, $v, $r) ON CONFLICT(key) DO UPDATE SET value = excluded.value, rev = excluded.rev", "$k", "$v", "$r");
            Delete = Prepare(db, "DELETE FROM kv WHERE key = $k", "$k");
            SetMetaRevision = Prepare(db, "UPDATE meta SET rev = $r WHERE id = 1", "$r");
            Savepoint = Prepare(db, "SAVEPOINT caller");
            RollbackTo = Prepare(db, "ROLLBACK TO caller");
            Release = Prepare(db, "RELEASE caller");
            // IMMEDIATE: take the write lock at BEGIN, not at the first write (only this connection writes anyway).
            Begin = Prepare(db, "BEGIN IMMEDIATE");
            Commit = Prepare(db, "COMMIT");
            Rollback = Prepare(db, "ROLLBACK");
            Reads = new Reader(db, ownsConnection: false);
            _all = [GetRevision, Upsert, Delete, SetMetaRevision, Savepoint, RollbackTo, Release, Begin, Commit, Rollback];
        }

        public SqliteCommand GetRevision { get; }
        public SqliteCommand Upsert { get; }
        public SqliteCommand Delete { get; }
        public SqliteCommand SetMetaRevision { get; }
        public SqliteCommand Savepoint { get; }
        public SqliteCommand RollbackTo { get; }
        public SqliteCommand Release { get; }
        public Reader Reads { get; }

        public SqliteCommand Begin { get; }
        public SqliteCommand Commit { get; }
        public SqliteCommand Rollback { get; }

        // After a failed COMMIT the transaction may still be open (or SQLite may have rolled it back already).
        public void TryRollback()
        {
            try
            {
                Rollback.ExecuteNonQuery();
            }
            catch (SqliteException)
            {
                // "no transaction is active": nothing to undo.
            }
        }

        public void Dispose()
        {
            foreach (var cmd in _all)
            {
                cmd.Dispose();
            }
            Reads.Dispose();
            _db.Dispose();
        }
    }

    /// <summary>A connection with prepared read statements; one reader uses it at a time.</summary>
    private sealed class Reader(SqliteConnection db, bool ownsConnection) : IDisposable
    {
        public SqliteCommand Get { get; } = Prepare(db, "SELECT value, rev FROM kv WHERE key = $k", "$k");

        public SqliteCommand List { get; } = Prepare(db, "SELECT key, value, rev FROM kv WHERE key >= $lo AND key < $hi ORDER BY key", "$lo", "$hi");

        public static Reader Open(string connectionString)
        {
            var db = new SqliteConnection(connectionString);
            db.Open();
            Exec(db, "PRAGMA query_only=1;");
            Exec(db, "PRAGMA busy_timeout=5000;");
            return new Reader(db, ownsConnection: true);
        }

        public void Dispose()
        {
            Get.Dispose();
            List.Dispose();
            if (ownsConnection)
            {
                db.Dispose();
            }
        }
    }

    private sealed class GateRelease(ManualResetEventSlim gate) : IDisposable
    {
        public void Dispose() => gate.Set();
    }
}
