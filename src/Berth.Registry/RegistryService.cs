using Berth.Aws.Ecr;
using Berth.Core;
using Berth.Registry.Hosting;
using Berth.Registry.Metadata;
using Berth.Registry.Replication;
using Berth.Registry.Storage;
using Berth.State;

namespace Berth.Registry;

/// <summary>
/// The registry's operations over blobs and metadata, shared by the distribution API (/v2/) and the
/// ECR API so that both are views of the same data. Every metadata change goes through one
/// <see cref="RegistryState"/> transaction; blob bytes are published before any metadata names them.
/// </summary>
/// <remarks>
/// One instance per region (<see cref="RegistryRegions"/>), each over its own <see cref="RegistryState"/>; the
/// blob store is shared by every region (content-addressed bytes are the same wherever they are named).
/// </remarks>
/// <param name="publishedRegion">The region the registry's short /v2/ names reach (the server's <c>--region</c>); null: this one.</param>
/// <param name="replication">Where a push that replication rules copy elsewhere is announced to the replication worker.</param>
public sealed class RegistryService(RegistryState state, BlobStore blobs, RegistryOptions options, Arns arns, TimeProvider time,
    string? publishedRegion = null, ReplicationQueue? replication = null)
{
    public RegistryState State { get; } = state;
    public BlobStore Blobs { get; } = blobs;
    public RegistryOptions Options { get; } = options;
    public Arns Arns { get; } = arns;

    /// <summary>The region this registry's repositories are in.</summary>
    public string Region => Arns.Identity.Region;

    /// <summary>The /v2/ path of a repository of this region (region-prefixed unless the region is the published one).</summary>
    public string PathOf(string name) => RegistryRoutes.PathOf(Region, publishedRegion ?? Region, name);

    /// <summary>The repositoryUri docker pushes to and pulls from: HOST/PATH.</summary>
    public string UriOf(string name) => Options.Host + "/" + PathOf(name);

    /// <summary>GetAuthorizationToken's proxyEndpoint: http://HOST, plus /REGION for a region other than the published one.</summary>
    public string ProxyEndpoint => "http://" + Options.Host + (Region == (publishedRegion ?? Region) ? "" : "/" + Region);

    /// <summary>The key an upload session of a repository of this region carries, so one region cannot finish another's upload.</summary>
    public string UploadKey(string name) => Region + "/" + name;

    // ---- repositories -------------------------------------------------------------------------

    public StoredRepository? FindRepository(string name) => State.Repositories.Find(name);

    public StoredRepository RequireRepository(string name)
        => FindRepository(name) ?? throw RegistryException.NameUnknown(name);

    public static void ValidateName(string name)
    {
        if (!RegistryNames.IsValidRepository(name))
        {
            throw RegistryException.NameInvalid(name);
        }
    }

    public Repository NewRepository(string name, string? tagMutability = null) => new()
    {
        RepositoryName = name,
        RepositoryArn = Arns.EcrRepository(name),
        RegistryId = Arns.Identity.AccountId,
        RepositoryUri = UriOf(name),
        CreatedAt = time.GetUtcNow(),
        ImageTagMutability = tagMutability ?? "MUTABLE",
        ImageScanningConfiguration = new ImageScanningConfiguration { ScanOnPush = false },
        EncryptionConfiguration = new EncryptionConfiguration { EncryptionType = "AES256" },
    };

    /// <summary>Creates a repository; false when one of that name exists already.</summary>
    public async Task<bool> CreateRepositoryAsync(StoredRepository repository, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var name = repository.Repository.RepositoryName!;
        if (State.Repositories.Find(name) is not null)
        {
            return false;
        }
        await tx.Put(State.Repositories, name, repository, expectedRevision: 0).CommitAsync(ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>Rewrites a repository document (settings, policies, tags) under the write lock.</summary>
    public async Task<StoredRepository> UpdateRepositoryAsync(string name, Action<StoredRepository> change, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var current = State.Repositories.Get(name) ?? throw RegistryException.NameUnknown(name);
        var copy = State.Repositories.Clone(current.Value);
        change(copy);
        await tx.Put(State.Repositories, name, copy, current.Revision).CommitAsync(ct).ConfigureAwait(false);
        return copy;
    }

    /// <summary>Rewrites the registry-level settings (registry policy, scanning, replication) under the write lock.</summary>
    public async Task<RegistrySettings> UpdateSettingsAsync(Action<RegistrySettings> change, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var current = State.Settings.Get(RegistryState.SettingsId);
        var copy = current is null ? new RegistrySettings() : State.Settings.Clone(current.Value);
        change(copy);
        await tx.Put(State.Settings, RegistryState.SettingsId, copy, current?.Revision ?? 0).CommitAsync(ct).ConfigureAwait(false);
        return copy;
    }

    /// <summary>Marks a manifest as asked for a scan (StartImageScan); returns the stored manifest.</summary>
    public async Task<StoredManifest> RequestScanAsync(string repository, string digest, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var id = RegistryState.ManifestId(repository, digest);
        var current = State.Manifests.Get(id) ?? throw RegistryException.ManifestUnknown(digest);
        var copy = State.Manifests.Clone(current.Value);
        copy.ScanRequestedAt = time.GetUtcNow();
        await tx.Put(State.Manifests, id, copy, current.Revision).CommitAsync(ct).ConfigureAwait(false);
        return copy;
    }

    /// <summary>Deletes a repository with its manifests, tags and blob links; the blobs go at the next sweep.</summary>
    public async Task<StoredRepository> DeleteRepositoryAsync(string name, bool force, Func<StoredRepository, int, Exception> notEmpty, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var repo = State.Repositories.Find(name) ?? throw RegistryException.NameUnknown(name);
        var manifests = State.ManifestsOf(name).ToList();
        if (manifests.Count > 0 && !force)
        {
            throw notEmpty(repo, manifests.Count);
        }
        foreach (var m in manifests)
        {
            tx.Delete(State.Manifests, RegistryState.ManifestId(name, m.Digest));
        }
        foreach (var t in State.TagsOf(name).ToList())
        {
            tx.Delete(State.Tags, RegistryState.TagId(name, t.Tag));
        }
        foreach (var l in State.Links.All.Where(l => l.Value.Repository == name).ToList())
        {
            tx.Delete(State.Links, l.Id);
        }
        await tx.Delete(State.Repositories, name).CommitAsync(ct).ConfigureAwait(false);
        return repo;
    }

    /// <summary>
    /// Checks that a push may go to <paramref name="name"/> without creating anything: the name is valid and the
    /// repository exists or will be created by the first blob or manifest stored in it (<see cref="RegistryOptions.CreateOnPush"/>).
    /// </summary>
    public void CheckPushTarget(string name)
    {
        ValidateName(name);
        if (!Options.CreateOnPush && FindRepository(name) is null)
        {
            throw RegistryException.NameUnknown(name);
        }
    }

    /// <summary>
    /// Inside <paramref name="tx"/>: the repository a push stores into, added to the transaction when it does not
    /// exist yet (create-on-push), so that a push that fails leaves no empty repository behind.
    /// </summary>
    private StoredRepository RepositoryInTransaction(StateTransaction tx, string name)
    {
        if (FindRepository(name) is { } existing)
        {
            return existing;
        }
        if (!Options.CreateOnPush)
        {
            throw RegistryException.NameUnknown(name);
        }
        var created = new StoredRepository { Repository = NewRepository(name) };
        tx.Put(State.Repositories, name, created, expectedRevision: 0);
        return created;
    }

    /// <summary>The repository a push goes to, created on the first push when <see cref="RegistryOptions.CreateOnPush"/>.</summary>
    public async Task<StoredRepository> RepositoryForPushAsync(string name, CancellationToken ct)
    {
        ValidateName(name);
        if (FindRepository(name) is { } existing)
        {
            return existing;
        }
        if (!Options.CreateOnPush)
        {
            throw RegistryException.NameUnknown(name);
        }
        await CreateRepositoryAsync(new StoredRepository { Repository = NewRepository(name) }, ct).ConfigureAwait(false);
        return RequireRepository(name);
    }

    // ---- blobs --------------------------------------------------------------------------------

    /// <summary>Size of a blob that is available in <paramref name="repository"/>, or null.</summary>
    public long? StatBlob(string repository, Digest digest)
    {
        if (State.Links.Find(RegistryState.LinkId(repository, digest.ToString())) is null
            && State.Manifests.Find(RegistryState.ManifestId(repository, digest.ToString())) is null)
        {
            return null;
        }
        return Blobs.SizeOf(digest);
    }

    /// <summary>Records that <paramref name="digest"/> (already published) is part of <paramref name="repository"/>.</summary>
    public async Task LinkAsync(string repository, Digest digest, long size, CancellationToken ct)
    {
        ValidateName(repository);
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        // The blob may have been swept between publishing and here; never link a missing blob.
        if (!Blobs.Exists(digest))
        {
            throw RegistryException.BlobUnknown(digest.ToString());
        }
        RepositoryInTransaction(tx, repository);
        await tx.Put(State.Links, RegistryState.LinkId(repository, digest.ToString()),
            new BlobLink { Repository = repository, Digest = digest.ToString(), Size = size, LinkedAt = time.GetUtcNow() }).CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Cross-repository mount: links a blob of <paramref name="from"/> into <paramref name="repository"/>; false when <paramref name="from"/> does not have it.</summary>
    public async Task<long?> MountAsync(string repository, Digest digest, string from, CancellationToken ct)
    {
        if (!RegistryNames.IsValidRepository(from) || StatBlob(from, digest) is not { } size)
        {
            return null;
        }
        await LinkAsync(repository, digest, size, ct).ConfigureAwait(false);
        return size;
    }

    /// <summary>Removes a blob from a repository (DELETE /v2/NAME/blobs/DIGEST); the bytes go at the next sweep if nothing references them.</summary>
    public async Task UnlinkBlobAsync(string repository, Digest digest, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var id = RegistryState.LinkId(repository, digest.ToString());
        if (State.Links.Find(id) is null)
        {
            throw RegistryException.BlobUnknown(digest.ToString());
        }
        await tx.Delete(State.Links, id).CommitAsync(ct).ConfigureAwait(false);
    }

    // ---- manifests ----------------------------------------------------------------------------

    /// <summary>Resolves a tag or digest reference to a manifest of the repository.</summary>
    public StoredManifest? FindManifest(string repository, string reference)
    {
        if (Digest.LooksLikeDigest(reference))
        {
            return State.Manifests.Find(RegistryState.ManifestId(repository, reference));
        }
        var tag = State.Tags.Find(RegistryState.TagId(repository, reference));
        return tag is null ? null : State.Manifests.Find(RegistryState.ManifestId(repository, tag.Digest));
    }

    /// <summary>The manifest's bytes (null if the blob vanished, which the store never lets happen while the manifest exists).</summary>
    public async Task<byte[]?> ReadManifestAsync(StoredManifest manifest, CancellationToken ct)
    {
        if (!Digest.TryParse(manifest.Digest, out var d))
        {
            return null;
        }
        await using var fs = Blobs.OpenRead(d.Value);
        if (fs is null)
        {
            return null;
        }
        var bytes = new byte[fs.Length];
        await fs.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
        return bytes;
    }

    /// <summary>Records a pull for ECR's lastRecordedPullTime (at most once a minute per image).</summary>
    public async Task RecordPullAsync(StoredManifest manifest, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (manifest.LastPulledAt is { } last && now - last < TimeSpan.FromMinutes(1))
        {
            return;
        }
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var id = RegistryState.ManifestId(manifest.Repository, manifest.Digest);
        if (State.Manifests.Get(id) is not { } current)
        {
            return;
        }
        var copy = State.Manifests.Clone(current.Value);
        copy.LastPulledAt = now;
        await tx.Put(State.Manifests, id, copy, current.Revision).CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Stores a manifest under a tag or its digest. Every blob and child manifest it names must exist;
    /// a digest reference must match the content; an immutable repository refuses to move a tag.
    /// </summary>
    public Task<StoredManifest> PutManifestAsync(string repository, string reference, byte[] content, string? contentType, CancellationToken ct)
        => PutManifestAsync(repository, reference, content, contentType, ManifestPutOptions.Default, ct);

    /// <inheritdoc cref="PutManifestAsync(string, string, byte[], string?, CancellationToken)"/>
    public async Task<StoredManifest> PutManifestAsync(string repository, string reference, byte[] content, string? contentType, ManifestPutOptions options, CancellationToken ct)
    {
        if (content.Length > ManifestParser.MaxManifestBytes)
        {
            throw RegistryException.SizeInvalid($"manifest is larger than {ManifestParser.MaxManifestBytes} bytes", 413);
        }
        ValidateName(repository);
        string? tag = null;
        Digest? byDigest = null;
        if (Digest.LooksLikeDigest(reference))
        {
            if (!Digest.TryParse(reference, out byDigest))
            {
                throw RegistryException.DigestInvalid("invalid digest reference", reference);
            }
        }
        else if (!RegistryNames.IsValidTag(reference))
        {
            // The spec's closed list of error codes has no TAG_INVALID; the reference is part of what was pushed.
            throw RegistryException.ManifestInvalid($"'{reference}' is neither a digest nor a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})");
        }
        else
        {
            tag = reference;
        }
        var parsed = ManifestParser.Parse(content, contentType);
        var digest = byDigest is { Algorithm: "sha512" }
            ? Digest.FromHash("sha512", System.Security.Cryptography.SHA512.HashData(content))
            : Digest.Sha256(content);
        if (byDigest is { } expected && expected != digest)
        {
            throw RegistryException.DigestInvalid("manifest digest did not match the content", reference);
        }
        // Everything is checked before anything is written, so a rejected manifest leaves no trace: no new
        // repository, no blob file. The metadata write lock keeps the garbage collector out until the commit.
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var repo = options.CreateRepository
            ? RepositoryInTransaction(tx, repository)
            : FindRepository(repository) ?? throw RegistryException.NameUnknown(repository);
        long imageSize = 0;
        var blobDigests = new List<string>();
        foreach (var b in parsed.Blobs)
        {
            if (b.External)
            {
                continue;
            }
            var bd = Digest.TryParse(b.Digest, out var x) ? x.Value : throw RegistryException.ManifestInvalid("invalid digest " + b.Digest);
            // Only blobs of this repository count (uploaded or mounted here), as for a pull.
            if (StatBlob(repository, bd) is not { } size)
            {
                throw RegistryException.ManifestBlobUnknown(b.Digest);
            }
            if (size != b.Size)
            {
                throw RegistryException.ManifestInvalid($"descriptor of {b.Digest} says {b.Size} bytes but the blob has {size}");
            }
            imageSize += size;
            blobDigests.Add(b.Digest);
        }
        foreach (var c in parsed.Children)
        {
            var child = State.Manifests.Find(RegistryState.ManifestId(repository, c.Digest)) ?? throw RegistryException.ManifestBlobUnknown(c.Digest);
            imageSize += child.ImageSize;
        }

        var digestText = digest.ToString();
        var id = RegistryState.ManifestId(repository, digestText);
        var existing = State.Manifests.Find(id);
        if (options.RejectUnchanged && (tag is null ? existing is not null : State.Tags.Find(RegistryState.TagId(repository, tag))?.Digest == digestText))
        {
            throw RegistryException.ManifestExists(digestText, tag);
        }
        if (tag is not null)
        {
            var current = State.Tags.Find(RegistryState.TagId(repository, tag));
            if (current is not null && current.Digest != digestText && IsImmutable(repo.Repository, tag))
            {
                throw RegistryException.TagImmutable(repository, tag);
            }
            tx.Put(State.Tags, RegistryState.TagId(repository, tag), new StoredTag { Repository = repository, Tag = tag, Digest = digestText });
        }

        // Publish the bytes (sha256-addressed, plus a sha512-addressed copy for a sha512 reference) before the
        // metadata that names them.
        await Blobs.PutAsync(content, ct).ConfigureAwait(false);
        if (digest.Algorithm == "sha512")
        {
            await PublishAliasAsync(digest, content, ct).ConfigureAwait(false);
        }
        var now = time.GetUtcNow();
        var manifest = new StoredManifest
        {
            Repository = repository,
            Digest = digestText,
            MediaType = parsed.MediaType,
            Size = content.Length,
            ImageSize = imageSize,
            PushedAt = existing?.PushedAt ?? now,
            LastPulledAt = existing?.LastPulledAt,
            Blobs = blobDigests,
            Children = parsed.Children.Select(c => c.Digest).ToList(),
            Subject = parsed.Subject?.Digest,
            ArtifactType = parsed.ArtifactType,
            ConfigMediaType = parsed.ConfigMediaType,
            Annotations = parsed.Annotations,
            ScanRequestedAt = existing?.ScanRequestedAt
                ?? (ScanningRules.ScansOnPush(repo.Repository, State.RegistrySettings.Scanning) ? now : null),
            // Desired state in: every push the rules match is copied again (a new tag must reach the destinations too).
            Replication = ReplicationRules.Destinations(State.RegistrySettings.Replication, repository, Arns.Identity.AccountId) is { Count: > 0 } targets
                ? targets
                : existing?.Replication,
        };
        tx.Put(State.Manifests, id, manifest);
        foreach (var b in blobDigests.Distinct())
        {
            var linkId = RegistryState.LinkId(repository, b);
            if (State.Links.Find(linkId) is null)
            {
                tx.Put(State.Links, linkId, new BlobLink { Repository = repository, Digest = b, Size = Blobs.SizeOf(Digest.TryParse(b, out var bd) ? bd.Value : default) ?? 0, LinkedAt = now });
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        if (manifest.Replication?.Any(r => r.Status == ReplicationRules.InProgress) == true)
        {
            replication?.Enqueue(new ReplicationKey(Region, repository, digestText));
        }
        return manifest;
    }

    /// <summary>
    /// Stores a replica of <paramref name="manifest"/> of <paramref name="source"/> (another region's registry) in this
    /// region's repository of the same name, created when missing as ECR does: its children first (an index), then
    /// the manifest with the tags that point at it in the source now. Blobs are shared by content address: each is
    /// touched first, so a sweep running meanwhile keeps it, and must still exist when the replica is committed.
    /// A replica is never replicated onwards. TAG_INVALID (immutable) when a tag would move here.
    /// </summary>
    public async Task<StoredManifest> ReplicateFromAsync(RegistryService source, StoredManifest manifest, CancellationToken ct)
    {
        foreach (var child in manifest.Children.Distinct(StringComparer.Ordinal))
        {
            if (child != manifest.Digest && State.Manifests.Find(RegistryState.ManifestId(manifest.Repository, child)) is null)
            {
                var childManifest = source.State.Manifests.Find(RegistryState.ManifestId(manifest.Repository, child))
                    ?? throw RegistryException.ManifestBlobUnknown(child);
                await ReplicateFromAsync(source, childManifest, ct).ConfigureAwait(false);
            }
        }
        foreach (var blob in manifest.Blobs.Append(manifest.Digest))
        {
            if (!Digest.TryParse(blob, out var d) || !Blobs.TouchIfExists(d.Value))
            {
                throw RegistryException.BlobUnknown(blob);
            }
        }
        var name = manifest.Repository;
        var tags = source.State.TagsFor(name, manifest.Digest).ToList();
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        StoredRepository repo;
        if (FindRepository(name) is { } found)
        {
            repo = found;
        }
        else
        {
            repo = new StoredRepository { Repository = NewRepository(name) };
            tx.Put(State.Repositories, name, repo, expectedRevision: 0);
        }
        foreach (var tag in tags)
        {
            var current = State.Tags.Find(RegistryState.TagId(name, tag));
            if (current is not null && current.Digest != manifest.Digest && IsImmutable(repo.Repository, tag))
            {
                throw RegistryException.TagImmutable(name, tag);
            }
            tx.Put(State.Tags, RegistryState.TagId(name, tag), new StoredTag { Repository = name, Tag = tag, Digest = manifest.Digest });
        }
        foreach (var child in manifest.Children.Distinct(StringComparer.Ordinal))
        {
            if (State.Manifests.Find(RegistryState.ManifestId(name, child)) is null && child != manifest.Digest)
            {
                throw RegistryException.ManifestBlobUnknown(child);
            }
        }
        var now = time.GetUtcNow();
        var id = RegistryState.ManifestId(name, manifest.Digest);
        var existing = State.Manifests.Find(id);
        var replica = source.State.Manifests.Clone(manifest);
        replica.PushedAt = existing?.PushedAt ?? now;
        replica.LastPulledAt = existing?.LastPulledAt;
        replica.ScanRequestedAt = existing?.ScanRequestedAt ?? (ScanningRules.ScansOnPush(repo.Repository, State.RegistrySettings.Scanning) ? now : null);
        replica.Replication = null;
        tx.Put(State.Manifests, id, replica);
        foreach (var b in replica.Blobs.Distinct(StringComparer.Ordinal))
        {
            var linkId = RegistryState.LinkId(name, b);
            if (State.Links.Find(linkId) is null)
            {
                // Checked again under this region's lock: a blob swept since it was touched is never named.
                var size = Digest.TryParse(b, out var bd) ? Blobs.SizeOf(bd.Value) : null;
                tx.Put(State.Links, linkId, new BlobLink { Repository = name, Digest = b, Size = size ?? throw RegistryException.BlobUnknown(b), LinkedAt = now });
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return replica;
    }

    /// <summary>Sets the replication status of one destination of a pushed image (the replication worker's report).</summary>
    /// <returns>false when the manifest is gone or was rewritten since <paramref name="expectedRevision"/> (nothing written).</returns>
    public async Task<bool> SetReplicationAsync(string repository, string digest, long expectedRevision, Func<List<StoredReplication>, bool> change, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var id = RegistryState.ManifestId(repository, digest);
        if (State.Manifests.Get(id) is not { Value.Replication: not null } current || current.Revision != expectedRevision)
        {
            return false;
        }
        var copy = State.Manifests.Clone(current.Value);
        if (!change(copy.Replication!))
        {
            return false;
        }
        await tx.Put(State.Manifests, id, copy, current.Revision).CommitAsync(ct).ConfigureAwait(false);
        return true;
    }

    public static bool IsImmutable(Repository repo, string tag) => repo.ImageTagMutability switch
    {
        "IMMUTABLE" => true,
        "IMMUTABLE_WITH_EXCLUSION" => !(repo.ImageTagMutabilityExclusionFilters ?? []).Any(f => Wildcard(f.Filter, tag)),
        "MUTABLE_WITH_EXCLUSION" => (repo.ImageTagMutabilityExclusionFilters ?? []).Any(f => Wildcard(f.Filter, tag)),
        _ => false,
    };

    /// <summary>ECR's wildcard match: '*' matches any run of characters.</summary>
    public static bool Wildcard(string? pattern, string value)
    {
        if (pattern is null)
        {
            return false;
        }
        var rx = "^" + string.Join(".*", pattern.Split('*').Select(System.Text.RegularExpressions.Regex.Escape)) + "$";
        return System.Text.RegularExpressions.Regex.IsMatch(value, rx, System.Text.RegularExpressions.RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    }

    /// <summary>Deletes a manifest by digest, with every tag that points at it.</summary>
    public async Task<StoredManifest> DeleteManifestAsync(string repository, string digest, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var id = RegistryState.ManifestId(repository, digest);
        var manifest = State.Manifests.Find(id) ?? throw RegistryException.ManifestUnknown(digest);
        foreach (var t in State.TagsOf(repository).Where(t => t.Digest == digest).ToList())
        {
            tx.Delete(State.Tags, RegistryState.TagId(repository, t.Tag));
        }
        await tx.Delete(State.Manifests, id).CommitAsync(ct).ConfigureAwait(false);
        return manifest;
    }

    /// <summary>Removes one tag; the manifest stays (reachable by digest).</summary>
    public async Task<StoredTag> DeleteTagAsync(string repository, string tag, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var id = RegistryState.TagId(repository, tag);
        var t = State.Tags.Find(id) ?? throw RegistryException.ManifestUnknown(tag);
        await tx.Delete(State.Tags, id).CommitAsync(ct).ConfigureAwait(false);
        return t;
    }

    // ---- images (the ECR view: a manifest with the tags that point at it) ----------------------

    /// <summary>Every image of the repository with its tags (sorted) and the indexes of the repository that list it.</summary>
    public IReadOnlyList<RegistryImage> ImagesOf(string repository)
    {
        var manifests = State.ManifestsOf(repository).ToList();
        var tags = State.TagsOf(repository)
            .GroupBy(t => t.Digest, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(t => t.Tag).Order(StringComparer.Ordinal).ToList(), StringComparer.Ordinal);
        var parents = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var m in manifests)
        {
            foreach (var child in m.Children.Distinct(StringComparer.Ordinal))
            {
                if (child != m.Digest)
                {
                    (parents.TryGetValue(child, out var list) ? list : parents[child] = []).Add(m.Digest);
                }
            }
        }
        return manifests
            .Select(m => new RegistryImage(m, tags.GetValueOrDefault(m.Digest) ?? [], parents.GetValueOrDefault(m.Digest) ?? []))
            .ToList();
    }

    /// <summary>
    /// ECR's image deletion for one image id. By tag: removes the tag, and the image with its last tag
    /// (unless an index of the repository still lists it, which keeps it reachable by digest). By digest:
    /// removes the image with all its tags, refused (MANIFEST_REFERENCED) while an index lists it.
    /// With both, the tag must point at the digest (TAG_DIGEST_MISMATCH) and the tag rule applies.
    /// </summary>
    public async Task<ImageDeletion> DeleteImageAsync(string repository, string? digest, string? tag, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        if (State.Repositories.Find(repository) is null)
        {
            throw RegistryException.NameUnknown(repository);
        }
        if (tag is not null)
        {
            var t = State.Tags.Find(RegistryState.TagId(repository, tag)) ?? throw RegistryException.ManifestUnknown(tag);
            if (digest is not null && t.Digest != digest)
            {
                throw RegistryException.TagDigestMismatch(tag, digest);
            }
            tx.Delete(State.Tags, RegistryState.TagId(repository, tag));
            var lastTag = !State.TagsFor(repository, t.Digest).Any(x => x != tag);
            var deleteImage = lastTag && ParentsOf(repository, t.Digest).Count == 0 && State.Manifests.Find(RegistryState.ManifestId(repository, t.Digest)) is not null;
            if (deleteImage)
            {
                tx.Delete(State.Manifests, RegistryState.ManifestId(repository, t.Digest));
            }
            await tx.CommitAsync(ct).ConfigureAwait(false);
            return new ImageDeletion(t.Digest, [tag], deleteImage);
        }
        ArgumentNullException.ThrowIfNull(digest);
        var id = RegistryState.ManifestId(repository, digest);
        if (State.Manifests.Find(id) is null)
        {
            throw RegistryException.ManifestUnknown(digest);
        }
        if (ParentsOf(repository, digest) is { Count: > 0 } parents)
        {
            throw RegistryException.ManifestReferenced(digest, parents);
        }
        var tags = State.TagsFor(repository, digest).Order(StringComparer.Ordinal).ToList();
        foreach (var t in tags)
        {
            tx.Delete(State.Tags, RegistryState.TagId(repository, t));
        }
        await tx.Delete(State.Manifests, id).CommitAsync(ct).ConfigureAwait(false);
        return new ImageDeletion(digest, tags, true);
    }

    /// <summary>
    /// Lifecycle expiry: under the write lock, shows <paramref name="select"/> the repository and its images
    /// and deletes the images whose digests it returns (with their tags) in one commit, so the decision and
    /// the deletion see the same state. Images an index still lists are never deleted. Stamps the
    /// repository's <see cref="StoredRepository.LifecyclePolicyEvaluatedAt"/>. Returns what was deleted.
    /// </summary>
    public async Task<IReadOnlyList<RegistryImage>> ExpireImagesAsync(string repository, Func<StoredRepository, IReadOnlyList<RegistryImage>, IEnumerable<string>> select, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        if (State.Repositories.Get(repository) is not { } current)
        {
            return [];
        }
        var images = ImagesOf(repository);
        var chosen = select(current.Value, images).ToHashSet(StringComparer.Ordinal);
        var expired = images.Where(i => chosen.Contains(i.Manifest.Digest) && i.ReferencedBy.Count == 0).ToList();
        foreach (var image in expired)
        {
            foreach (var t in image.Tags)
            {
                tx.Delete(State.Tags, RegistryState.TagId(repository, t));
            }
            tx.Delete(State.Manifests, RegistryState.ManifestId(repository, image.Manifest.Digest));
        }
        var copy = State.Repositories.Clone(current.Value);
        copy.LifecyclePolicyEvaluatedAt = time.GetUtcNow();
        await tx.Put(State.Repositories, repository, copy, current.Revision).CommitAsync(ct).ConfigureAwait(false);
        return expired;
    }

    private List<string> ParentsOf(string repository, string digest)
        => State.ManifestsOf(repository).Where(m => m.Digest != digest && m.Children.Contains(digest)).Select(m => m.Digest).Order(StringComparer.Ordinal).ToList();

    // ---- garbage collection -------------------------------------------------------------------

    /// <summary>
    /// One sweep: drops idle uploads, links older than the grace period that no manifest of their repository
    /// needs, and blob files nothing references. Holds the metadata write lock throughout, so no manifest
    /// can start naming a blob while it is judged; the blob store re-checks each file's age under its own
    /// lock, so an upload that just completed (and touched the file) is never deleted.
    /// </summary>
    public Task<GcResult> CollectGarbageAsync(CancellationToken ct) => CollectGarbageAsync([this], ct);

    /// <summary>
    /// The sweep over every region's registry (they share one blob store, so a blob goes only when no region names
    /// it). Each region's links are judged under its own lock; a replica touches its blobs before naming them, so the
    /// blob store's age re-check keeps a blob a region is just starting to name.
    /// </summary>
    public async Task<GcResult> CollectGarbageAsync(IReadOnlyList<RegistryService> regions, CancellationToken ct)
    {
        var expiredUploads = Blobs.ExpireUploads(Options.UploadIdleTimeout);
        var cutoff = time.GetUtcNow() - Options.GcGracePeriod;
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        var staleLinks = 0;
        foreach (var region in regions)
        {
            staleLinks += await region.MarkAsync(referenced, cutoff, ct).ConfigureAwait(false);
        }

        var deleted = 0;
        long bytes = 0;
        foreach (var (digest, written) in Blobs.EnumerateBlobs().ToList())
        {
            if (!referenced.Contains(digest.ToString()) && Blobs.DeleteIfOlder(digest, cutoff.UtcDateTime) is { } size)
            {
                deleted++;
                bytes += size;
            }
        }
        return new GcResult(deleted, bytes, staleLinks, expiredUploads);
    }

    /// <summary>Adds what this region references to <paramref name="referenced"/> and drops its stale links; returns how many.</summary>
    private async Task<int> MarkAsync(HashSet<string> referenced, DateTimeOffset cutoff, CancellationToken ct)
    {
        await using var tx = await State.BeginAsync(ct).ConfigureAwait(false);
        var perRepo = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in State.Manifests.All)
        {
            referenced.Add(m.Value.Digest);
            foreach (var b in m.Value.Blobs)
            {
                referenced.Add(b);
                perRepo.Add(RegistryState.LinkId(m.Value.Repository, b));
            }
        }
        var staleLinks = 0;
        foreach (var l in State.Links.All)
        {
            if (perRepo.Contains(l.Id) || l.Value.LinkedAt > cutoff)
            {
                referenced.Add(l.Value.Digest);
            }
            else
            {
                tx.Delete(State.Links, l.Id);
                staleLinks++;
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return staleLinks;
    }

    private async Task PublishAliasAsync(Digest digest, byte[] content, CancellationToken ct)
    {
        if (Blobs.Exists(digest))
        {
            return;
        }
        var session = Blobs.StartUpload("-");
        await Blobs.AppendAsync(session, new MemoryStream(content), null, ct).ConfigureAwait(false);
        await Blobs.CompleteAsync(session, digest, ct).ConfigureAwait(false);
    }
}

public sealed record GcResult(int BlobsDeleted, long BytesFreed, int LinksDropped, int UploadsExpired);

/// <summary>How <see cref="RegistryService.PutManifestAsync(string, string, byte[], string?, ManifestPutOptions, CancellationToken)"/> treats the repository and a push that changes nothing.</summary>
/// <param name="CreateRepository">create the repository on first push (per <see cref="RegistryOptions.CreateOnPush"/>); false: NAME_UNKNOWN when it does not exist (ECR's PutImage)</param>
/// <param name="RejectUnchanged">MANIFEST_EXISTS when the tag already points at this manifest, or (by digest) the manifest is already stored (ECR's ImageAlreadyExistsException)</param>
public sealed record ManifestPutOptions(bool CreateRepository = true, bool RejectUnchanged = false)
{
    public static readonly ManifestPutOptions Default = new();
}

/// <summary>An image: a manifest, the tags pointing at it (sorted) and the digests of the indexes of its repository that list it.</summary>
public sealed record RegistryImage(StoredManifest Manifest, IReadOnlyList<string> Tags, IReadOnlyList<string> ReferencedBy);

/// <summary>What one image deletion did: the image's digest, the tags removed, and whether the manifest itself went.</summary>
public sealed record ImageDeletion(string Digest, IReadOnlyList<string> RemovedTags, bool ImageDeleted);
