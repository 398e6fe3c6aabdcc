using System.Buffers.Binary;
using System.Formats.Tar;
using System.Runtime.InteropServices;

namespace Berth.Agent.Runtime;

/// <summary>
/// The image of the pause container that holds an awsvpc task's network namespace, made on the spot: one static
/// executable, <c>/pause</c>, that blocks in the kernel for ever. Built from bytes here and loaded with
/// <c>docker import</c>, so a fresh host needs no registry and no image it lacks (Docker Hub is often unreachable).
/// </summary>
/// <remarks>
/// The executable is a hand-assembled ELF of a few instructions: x86-64 loops on <c>pause(2)</c>, arm64 (which has no
/// pause syscall) on <c>ppoll(NULL, 0, NULL, NULL)</c>. As PID 1 of its namespace it has no signal handler, so the
/// kernel ignores SIGTERM: the agent stops it with a zero timeout (SIGKILL), which is all a namespace holder needs.
/// </remarks>
internal static class PauseImage
{
    /// <summary>Bump when the executable changes, so hosts import the new one.</summary>
    public const string Reference = "berth/pause:1";

    public const string Command = "/pause";

    private const ulong LoadAddress = 0x400000;
    private const int HeaderSize = 64 + 56; // ELF header + one program header

    // x86-64: mov eax, 34 (pause); syscall; jmp back to the mov.
    private static readonly byte[] X64Code = [0xB8, 0x22, 0x00, 0x00, 0x00, 0x0F, 0x05, 0xEB, 0xF7];

    // arm64: movz x8, #73 (ppoll); movz x0..x3, #0; svc #0; b back to the first movz.
    private static readonly uint[] Arm64Code = [0xD2800928, 0xD2800000, 0xD2800001, 0xD2800002, 0xD2800003, 0xD4000001, 0x17FFFFFA];

    /// <summary>The ELF executable for <paramref name="architecture"/>; null for an architecture it has no code for.</summary>
    public static byte[]? Executable(Architecture architecture)
    {
        byte[] code;
        ushort machine;
        switch (architecture)
        {
            case Architecture.X64:
                code = X64Code;
                machine = 62; // EM_X86_64
                break;
            case Architecture.Arm64:
                code = new byte[Arm64Code.Length * 4];
                for (var i = 0; i < Arm64Code.Length; i++)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(code.AsSpan(i * 4), Arm64Code[i]);
                }
                machine = 183; // EM_AARCH64
                break;
            default:
                return null;
        }
        var elf = new byte[HeaderSize + code.Length];
        var s = elf.AsSpan();
        // e_ident: magic, 64-bit, little endian, version 1, System V ABI.
        s[0] = 0x7F; s[1] = (byte)'E'; s[2] = (byte)'L'; s[3] = (byte)'F'; s[4] = 2; s[5] = 1; s[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(s[16..], 2);           // e_type: ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(s[18..], machine);     // e_machine
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], 1);           // e_version
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], LoadAddress + HeaderSize); // e_entry: the code
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], 64);          // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(s[52..], 64);          // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(s[54..], 56);          // e_phentsize
        BinaryPrimitives.WriteUInt16LittleEndian(s[56..], 1);           // e_phnum
        // One PT_LOAD of the whole file, readable and executable.
        var ph = s[64..];
        BinaryPrimitives.WriteUInt32LittleEndian(ph, 1);                // p_type: PT_LOAD
        BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], 5);           // p_flags: R + X
        BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], LoadAddress); // p_vaddr
        BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], LoadAddress); // p_paddr
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], (ulong)elf.Length); // p_filesz
        BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], (ulong)elf.Length); // p_memsz
        BinaryPrimitives.WriteUInt64LittleEndian(ph[48..], 0x1000);     // p_align
        code.CopyTo(s[HeaderSize..]);
        return elf;
    }

    /// <summary>A root file system holding only <c>/pause</c>, as the tar stream <c>docker import</c> reads.</summary>
    public static MemoryStream RootFileSystem(byte[] executable)
    {
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            var entry = new UstarTarEntry(TarEntryType.RegularFile, "pause")
            {
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
                    | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute,
                DataStream = new MemoryStream(executable),
                ModificationTime = DateTimeOffset.UnixEpoch,
            };
            writer.WriteEntry(entry);
        }
        tar.Position = 0;
        return tar;
    }
}
