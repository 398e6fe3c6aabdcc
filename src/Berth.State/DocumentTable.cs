using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Berth.State;

/// <summary>A stored document with the store revision it was read at (the compare-and-swap token).</summary>
public sealed record Versioned<T>(string Id, T Value, long Revision);

/// <summary>
/// The in-memory index of one kind of document, loaded from the store on start and kept current by
/// <see cref="StateTransaction"/> commits. Cached values are snapshots: never modify one in place,
/// <see cref="Clone"/> it and write the copy.
/// </summary>
public sealed class DocumentTable<T>(string prefix, JsonTypeInfo<T> typeInfo) where T : class
{
    private readonly ConcurrentDictionary<string, Versioned<T>> _items = new(StringComparer.Ordinal);

    public string Prefix { get; } = prefix;
    public JsonTypeInfo<T> TypeInfo { get; } = typeInfo;

    public int Count => _items.Count;

    public Versioned<T>? Get(string id) => _items.GetValueOrDefault(id);

    public T? Find(string id) => _items.TryGetValue(id, out var v) ? v.Value : null;

    /// <summary>All documents, unordered. A point-in-time enumeration: safe while writers commit.</summary>
    public IEnumerable<Versioned<T>> All => _items.Values;

    public T Clone(T value) => JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(value, TypeInfo), TypeInfo)!;

    public string Key(string id) => Prefix + id;

    public byte[] Serialize(T value) => JsonSerializer.SerializeToUtf8Bytes(value, TypeInfo);

    /// <summary>
    /// Called with (id, old value, new value) after every change applied to the table, under the state's
    /// write lock, and for each document loaded from the store (old null). Derived indexes hook in here.
    /// </summary>
    public event Action<string, T?, T?>? Changed;

    public void Apply(string id, T? value, long revision)
    {
        T? old;
        if (value is null)
        {
            old = _items.TryRemove(id, out var gone) ? gone.Value : null;
        }
        else
        {
            old = _items.TryGetValue(id, out var prev) ? prev.Value : null;
            _items[id] = new Versioned<T>(id, value, revision);
        }
        Changed?.Invoke(id, old, value);
    }

    internal void Clear() => _items.Clear();

    public async Task LoadAsync(IStateStore store, CancellationToken ct)
    {
        _items.Clear();
        foreach (var e in await store.ListAsync(Prefix, ct).ConfigureAwait(false))
        {
            var id = e.Key[Prefix.Length..];
            var value = JsonSerializer.Deserialize(e.Value, TypeInfo)!;
            _items[id] = new Versioned<T>(id, value, e.Revision);
            Changed?.Invoke(id, null, value);
        }
    }
}
