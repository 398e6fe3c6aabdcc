using System.Formats.Tar;
using System.IO.Compression;
using System.Text;

namespace Berth.EndToEnd.Registry;

/// <summary>An OCI image layout written by hand: oci-layout, index.json and blobs/sha256/*.</summary>
public sealed class OciLayout
{
    private readonly string _dir;

    public OciLayout(string dir)
    {
        _dir = dir;
        Directory.CreateDirectory(Path.Combine(dir, "blobs", "sha256"));
        File.WriteAllText(Path.Combine(dir, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
    }

    public sealed record Blob(string MediaType, string Digest, byte[] Bytes)
    {
        public string Descriptor(string? extra = null) => $$"""{"mediaType":"{{MediaType}}","digest":"{{Digest}}","size":{{Bytes.Length}}{{extra}}}""";
    }

    public Blob Add(string mediaType, byte[] bytes)
    {
        var digest = RegistryClient.Sha256(bytes);
        File.WriteAllBytes(Path.Combine(_dir, "blobs", "sha256", digest["sha256:".Length..]), bytes);
        return new Blob(mediaType, digest, bytes);
    }

    /// <summary>A one-layer image for one platform: a gzip tar holding /platform.txt, its config and its manifest.</summary>
    public (Blob Manifest, Blob Config, Blob Layer) AddImage(string os, string architecture)
    {
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            var entry = new PaxTarEntry(TarEntryType.RegularFile, "platform.txt")
            {
                DataStream = new MemoryStream(Encoding.UTF8.GetBytes($"{os}/{architecture}\n")),
                ModificationTime = new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero),
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            };
            writer.WriteEntry(entry);
        }
        var diffId = RegistryClient.Sha256(tar.ToArray());
        var gz = new MemoryStream();
        using (var gzip = new GZipStream(gz, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(tar.ToArray());
        }
        var layer = Add(RegistryClient.OciLayer, gz.ToArray());
        var config = Add(RegistryClient.OciConfig, Encoding.UTF8.GetBytes($$$"""
            {"architecture":"{{{architecture}}}","os":"{{{os}}}","config":{"Cmd":["cat","/platform.txt"]},"rootfs":{"type":"layers","diff_ids":["{{{diffId}}}"]}}
            """));
        var manifest = Add(RegistryClient.OciManifest, Encoding.UTF8.GetBytes($$"""
            {"schemaVersion":2,"mediaType":"{{RegistryClient.OciManifest}}","config":{{config.Descriptor()}},"layers":[{{layer.Descriptor()}}]}
            """));
        return (manifest, config, layer);
    }

    /// <summary>index.json naming <paramref name="root"/> under the reference <paramref name="refName"/>.</summary>
    public void WriteIndex(Blob root, string refName)
        => File.WriteAllText(Path.Combine(_dir, "index.json"), $$"""
            {"schemaVersion":2,"mediaType":"{{RegistryClient.OciIndex}}","manifests":[{{root.Descriptor($$""","annotations":{"org.opencontainers.image.ref.name":"{{refName}}"}""")}}]}
            """);
}
