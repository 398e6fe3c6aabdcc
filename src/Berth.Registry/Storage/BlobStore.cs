using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Security.Cryptography;

namespace Berth.Registry.Storage;

/// <summary>
/// Content-addressed blobs on disk, shared by every repository: <c>blobs/{alg}/{hex[0..2]}/{hex}</c>.
/// Uploads are written to <c>uploads/{id}</c> and renamed into place only after the digest checks,
/// so a blob path either holds exactly the bytes of its digest or does not exist (a crash mid-upload
/// leaves only a file under uploads/, which the next start removes).
/// </summary>
public sealed class BlobStore
{
    private const int BufferSize = 1 << 20;
    // The least a body read waits for (below Kestrel's 1 MiB request buffer, so it never waits on itself).
    private const int MinimumRead = 256 << 10;
    private readonly string _blobs;
    private readonly string _uploads;
    private readonly ConcurrentDictionary<string, UploadSession> _sessions = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    // Publishing (or touching) a blob takes the read side; the garbage collector's delete takes the
    // write side and re-checks the file's age, so a blob an upload has just produced is never deleted.
    private readonly ReaderWriterLockSlim _gate = new();

    public BlobStore(string root, TimeProvider time)
    {
        _time = time;
        _blobs = Path.Combine(root, "blobs");
        _uploads = Path.Combine(root, "uploads");
        Directory.CreateDirectory(_blobs);
        // Sessions live in memory only: whatever a previous process left under uploads/ is dead.
        if (Directory.Exists(_uploads))
        {
            Directory.Delete(_uploads, recursive: true);
        }
        Directory.CreateDirectory(_uploads);
    }

    public string PathOf(Digest d) => Path.Combine(_blobs, d.Algorithm, d.Hex[..2], d.Hex);

    public bool Exists(Digest d) => File.Exists(PathOf(d));

    /// <summary>The blob's size, or null when it is not stored.</summary>
    public long? SizeOf(Digest d)
    {
        var info = new FileInfo(PathOf(d));
        return info.Exists ? info.Length : null;
    }

    /// <summary>Opens a stored blob for reading (null when absent). The stream survives a concurrent delete.</summary>
    public FileStream? OpenRead(Digest d)
    {
        try
        {
            return new FileStream(PathOf(d), new FileStreamOptions
            {
                Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.Read | FileShare.Delete,
                BufferSize = 0, Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
            });
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Stores small content (a manifest) whole; returns its sha256 digest.</summary>
    public async Task<Digest> PutAsync(byte[] content, CancellationToken ct)
    {
        var digest = Digest.Sha256(content);
        var target = PathOf(digest);
        if (TouchIfExists(target))
        {
            return digest;
        }
        var temp = Path.Combine(_uploads, "put-" + Guid.NewGuid().ToString("N"));
        await using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.Asynchronous))
        {
            await fs.WriteAsync(content, ct).ConfigureAwait(false);
            fs.Flush(flushToDisk: true);
        }
        PublishOrTouch(temp, target);
        return digest;
    }

    public UploadSession StartUpload(string repository)
    {
        var id = Guid.NewGuid().ToString();
        var session = new UploadSession(id, repository, Path.Combine(_uploads, id), _time.GetUtcNow());
        File.Create(session.FilePath).Dispose();
        _sessions[id] = session;
        return session;
    }

    public UploadSession? FindUpload(string id) => _sessions.GetValueOrDefault(id);

    /// <summary>Ids of uploads in progress (the garbage collector leaves their blobs alone).</summary>
    public IReadOnlyCollection<UploadSession> Uploads => (IReadOnlyCollection<UploadSession>)_sessions.Values;

    /// <summary>
    /// Appends <paramref name="body"/> to the upload. <paramref name="expectedOffset"/> (from Content-Range)
    /// must equal the bytes received so far; otherwise nothing is written and false is returned (416).
    /// </summary>
    public async Task<bool> AppendAsync(UploadSession session, Stream body, long? expectedOffset, CancellationToken ct)
    {
        var reader = PipeReader.Create(body, new StreamPipeReaderOptions(bufferSize: 64 << 10, leaveOpen: true));
        try
        {
            return await AppendAsync(session, reader, expectedOffset, ct).ConfigureAwait(false);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc cref="AppendAsync(UploadSession, Stream, long?, CancellationToken)"/>
    public async Task<bool> AppendAsync(UploadSession session, PipeReader body, long? expectedOffset, CancellationToken ct)
    {
        await session.Lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (session.Closed)
            {
                throw new InvalidOperationException("upload is closed");
            }
            if (expectedOffset is { } start && start != session.Length)
            {
                return false;
            }
            session.Touched = _time.GetUtcNow();
            var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            try
            {
                await using var fs = new FileStream(session.FilePath, FileMode.Append, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous);
                int n;
                while ((n = await FillAsync(body, buffer, ct).ConfigureAwait(false)) > 0)
                {
                    await fs.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                    // The running hash follows exactly the bytes that reached the file.
                    session.Hash.AppendData(buffer, 0, n);
                    session.Length += n;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
                session.Touched = _time.GetUtcNow();
            }
            return true;
        }
        finally
        {
            session.Lock.Release();
        }
    }

    /// <summary>
    /// Finishes an upload: verifies the received bytes hash to <paramref name="expected"/> and publishes the
    /// blob. On a mismatch the upload is discarded and nothing is stored. Returns the blob's size, or null on mismatch.
    /// </summary>
    public async Task<long?> CompleteAsync(UploadSession session, Digest expected, CancellationToken ct)
    {
        await session.Lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            session.Closed = true;
            _sessions.TryRemove(session.Id, out _);
            Digest actual;
            if (expected.Algorithm == "sha256")
            {
                actual = Digest.FromHash("sha256", session.Hash.GetHashAndReset());
            }
            else
            {
                actual = await HashFileAsync(session.FilePath, expected.Algorithm, ct).ConfigureAwait(false);
            }
            if (actual != expected)
            {
                TryDelete(session.FilePath);
                return null;
            }
            await using (var fs = new FileStream(session.FilePath, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
            {
                fs.Flush(flushToDisk: true);
            }
            PublishOrTouch(session.FilePath, PathOf(expected));
            return session.Length;
        }
        finally
        {
            session.Hash.Dispose();
            session.Lock.Release();
        }
    }

    public void CancelUpload(UploadSession session)
    {
        if (_sessions.TryRemove(session.Id, out _))
        {
            session.Closed = true;
            TryDelete(session.FilePath);
        }
    }

    /// <summary>Every stored blob with its last write time (for the garbage collector).</summary>
    public IEnumerable<(Digest Digest, DateTime WrittenUtc)> EnumerateBlobs()
    {
        foreach (var algDir in Directory.EnumerateDirectories(_blobs))
        {
            var alg = Path.GetFileName(algDir);
            foreach (var file in Directory.EnumerateFiles(algDir, "*", SearchOption.AllDirectories))
            {
                if (Digest.TryParse(alg + ":" + Path.GetFileName(file), out var d))
                {
                    yield return (d.Value, File.GetLastWriteTimeUtc(file));
                }
            }
        }
    }

    /// <summary>Deletes a blob unless it was written (or touched) at or after <paramref name="cutoffUtc"/>; returns its size when deleted.</summary>
    public long? DeleteIfOlder(Digest d, DateTime cutoffUtc)
    {
        _gate.EnterWriteLock();
        try
        {
            var info = new FileInfo(PathOf(d));
            if (!info.Exists || info.LastWriteTimeUtc >= cutoffUtc)
            {
                return null;
            }
            var size = info.Length;
            return TryDelete(info.FullName) ? size : null;
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }

    /// <summary>Drops uploads idle for longer than <paramref name="idle"/>; returns how many.</summary>
    public int ExpireUploads(TimeSpan idle)
    {
        var cutoff = _time.GetUtcNow() - idle;
        var n = 0;
        foreach (var s in _sessions.Values)
        {
            if (s.Touched < cutoff && s.Lock.Wait(0))
            {
                try
                {
                    CancelUpload(s);
                    n++;
                }
                finally
                {
                    s.Lock.Release();
                }
            }
        }
        return n;
    }

    // A request body hands out whatever the socket had (docker sends HTTP chunks of a few KiB to 32 KiB);
    // waiting for at least MinimumRead bytes per read wakes this loop a few times per MiB instead of once
    // per chunk, and gathering a full buffer gives the file and the hash few large writes.
    private static async Task<int> FillAsync(PipeReader body, byte[] buffer, CancellationToken ct)
    {
        var filled = 0;
        while (filled < BufferSize)
        {
            var result = await body.ReadAtLeastAsync(Math.Min(MinimumRead, BufferSize - filled), ct).ConfigureAwait(false);
            var data = result.Buffer;
            var take = (int)Math.Min(data.Length, BufferSize - filled);
            data.Slice(0, take).CopyTo(buffer.AsSpan(filled));
            body.AdvanceTo(data.GetPosition(take));
            filled += take;
            if (take == 0 && (result.IsCompleted || result.IsCanceled))
            {
                break;
            }
        }
        return filled;
    }

    private static async Task<Digest> HashFileAsync(string path, string algorithm, CancellationToken ct)
    {
        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
        var hash = algorithm == "sha512" ? await SHA512.HashDataAsync(fs, ct).ConfigureAwait(false) : await SHA256.HashDataAsync(fs, ct).ConfigureAwait(false);
        return Digest.FromHash(algorithm, hash);
    }

    private void PublishOrTouch(string temp, string target)
    {
        _gate.EnterReadLock();
        try
        {
            if (File.Exists(target))
            {
                // Same digest, same bytes: keep the stored copy, count it as new for the grace period.
                TryDelete(temp);
                Touch(target);
                return;
            }
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            try
            {
                File.Move(temp, target, overwrite: false);
            }
            catch (IOException) when (File.Exists(target))
            {
                // Another upload of the same content won the race; its bytes are identical.
                TryDelete(temp);
                Touch(target);
            }
        }
        finally
        {
            _gate.ExitReadLock();
        }
    }

    /// <summary>Marks a blob as just written (so a sweep judging it now keeps it); false when it does not exist.</summary>
    public bool TouchIfExists(Digest d) => TouchIfExists(PathOf(d));

    private bool TouchIfExists(string target)
    {
        _gate.EnterReadLock();
        try
        {
            if (!File.Exists(target))
            {
                return false;
            }
            Touch(target);
            return true;
        }
        finally
        {
            _gate.ExitReadLock();
        }
    }

    private void Touch(string path)
    {
        try
        {
            File.SetLastWriteTimeUtc(path, _time.GetUtcNow().UtcDateTime);
        }
        catch (IOException)
        {
        }
    }

    private static bool TryDelete(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return false;
            }
            File.Delete(path);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }
}

/// <summary>An upload in progress: bytes so far in <see cref="FilePath"/>, hashed as they arrive.</summary>
public sealed class UploadSession(string id, string repository, string filePath, DateTimeOffset started)
{
    public string Id { get; } = id;
    public string Repository { get; } = repository;
    public string FilePath { get; } = filePath;
    public DateTimeOffset Started { get; } = started;
    public DateTimeOffset Touched { get; set; } = started;
    public long Length { get; set; }
    public bool Closed { get; set; }
    internal IncrementalHash Hash { get; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    internal SemaphoreSlim Lock { get; } = new(1, 1);
}
