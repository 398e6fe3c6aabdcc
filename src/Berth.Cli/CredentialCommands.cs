using System.CommandLine;
using System.Text.RegularExpressions;
using Berth.Aws.Auth;

namespace Berth.Cli;

/// <summary>berth credentials create|list|delete: the access keys a server accepts, kept in DATA/credentials.json.</summary>
internal static partial class CredentialCommands
{
    private static Option<string> DataOption() => new("--data")
    {
        Description = "Data directory of the server (env BERTH_DATA).",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("BERTH_DATA") is { Length: > 0 } d ? d : ".berth",
    };

    public static Command Build()
    {
        var cmd = new Command("credentials", "Manage the access keys (AWS Signature Version 4) a Berth server accepts.");
        cmd.Subcommands.Add(Create());
        cmd.Subcommands.Add(List());
        cmd.Subcommands.Add(Delete());
        return cmd;
    }

    private static Command Create()
    {
        var data = DataOption();
        var name = new Option<string>("--name") { Description = "User name the key acts as (letters, digits and +=,.@_-).", Required = true };
        var permissions = new Option<string>("--permissions")
        {
            Description = "admin (every call) or read-only (Describe*, List*, Get*, BatchGet* and registry pulls).",
            DefaultValueFactory = _ => Permissions.Admin,
        };
        var session = new Option<bool>("--session-token") { Description = "Also issue a session token the requests must carry (X-Amz-Security-Token)." };
        var endpoint = new Option<string>("--endpoint-url") { Description = "Endpoint printed in the example (default http://127.0.0.1:4566)." };
        var cmd = new Command("create", "Create an access key; prints its id and secret (the secret is shown only here).") { data, name, permissions, session, endpoint };
        cmd.SetAction(async (p, ct) =>
        {
            var n = p.GetValue(name)!;
            var perm = p.GetValue(permissions)!;
            if (!UserName().IsMatch(n))
            {
                await Console.Error.WriteLineAsync($"berth: --name '{n}' must be 1 to 64 of letters, digits and +=,.@_- (as an IAM user name).").ConfigureAwait(false);
                return 2;
            }
            if (!Permissions.IsKnown(perm))
            {
                await Console.Error.WriteLineAsync($"berth: --permissions '{perm}' is not one of admin, read-only.").ConfigureAwait(false);
                return 2;
            }
            var dir = Path.GetFullPath(p.GetValue(data)!);
            var path = CredentialFile.PathIn(dir);
            var all = CredentialFile.Load(path).ToList();
            if (all.Any(c => c.Name == n))
            {
                await Console.Error.WriteLineAsync($"berth: a credential named '{n}' exists already (berth credentials delete --name {n} --data {dir} removes it).").ConfigureAwait(false);
                return 2;
            }
            var credential = AwsCredential.Generate(n, perm, DateTimeOffset.UtcNow, p.GetValue(session));
            all.Add(credential);
            CredentialFile.Save(path, all);
            var url = p.GetValue(endpoint) is { Length: > 0 } e ? e : "http://127.0.0.1:4566";
            Console.WriteLine($"Created credential '{n}' ({perm}) in {path}.");
            Console.WriteLine($"AccessKeyId:     {credential.AccessKeyId}");
            Console.WriteLine($"SecretAccessKey: {credential.SecretAccessKey}");
            if (credential.SessionToken is not null)
            {
                Console.WriteLine($"SessionToken:    {credential.SessionToken}");
            }
            Console.WriteLine();
            Console.WriteLine("The secret is not shown again. To use it with the AWS CLI:");
            Console.WriteLine($"  aws configure set aws_access_key_id {credential.AccessKeyId} --profile berth");
            Console.WriteLine($"  aws configure set aws_secret_access_key {credential.SecretAccessKey} --profile berth");
            if (credential.SessionToken is not null)
            {
                Console.WriteLine($"  aws configure set aws_session_token {credential.SessionToken} --profile berth");
            }
            Console.WriteLine("  aws configure set region us-east-1 --profile berth");
            Console.WriteLine($"  aws configure set endpoint_url {url} --profile berth");
            Console.WriteLine("  aws ecs list-clusters --profile berth");
            return 0;
        });
        return cmd;
    }

    private static Command List()
    {
        var data = DataOption();
        var cmd = new Command("list", "List the access keys (never their secrets).") { data };
        cmd.SetAction(p =>
        {
            var path = CredentialFile.PathIn(Path.GetFullPath(p.GetValue(data)!));
            var all = CredentialFile.Load(path);
            Console.WriteLine($"{"ACCESS KEY ID",-22}{"NAME",-24}{"PERMISSIONS",-13}{"SESSION",-9}CREATED");
            foreach (var c in all)
            {
                Console.WriteLine($"{c.AccessKeyId,-22}{c.Name,-24}{c.Permissions,-13}{(c.SessionToken is null ? "no" : "yes"),-9}{c.Created:yyyy-MM-ddTHH:mm:ssZ}");
            }
            return 0;
        });
        return cmd;
    }

    private static Command Delete()
    {
        var data = DataOption();
        var key = new Argument<string?>("access-key-id") { Description = "Access key id to delete.", Arity = ArgumentArity.ZeroOrOne };
        var name = new Option<string?>("--name") { Description = "Delete the credential with this name instead." };
        var cmd = new Command("delete", "Delete an access key; a running server stops accepting it within a second.") { key, data, name };
        cmd.SetAction(async (p, ct) =>
        {
            var id = p.GetValue(key);
            var n = p.GetValue(name);
            if (string.IsNullOrEmpty(id) == string.IsNullOrEmpty(n))
            {
                await Console.Error.WriteLineAsync("berth: give either an access key id or --name NAME.").ConfigureAwait(false);
                return 2;
            }
            var path = CredentialFile.PathIn(Path.GetFullPath(p.GetValue(data)!));
            var all = CredentialFile.Load(path).ToList();
            var removed = all.RemoveAll(c => string.IsNullOrEmpty(id) ? c.Name == n : c.AccessKeyId == id);
            if (removed == 0)
            {
                await Console.Error.WriteLineAsync($"berth: no credential {(string.IsNullOrEmpty(id) ? "named '" + n + "'" : "'" + id + "'")} in {path}.").ConfigureAwait(false);
                return 1;
            }
            CredentialFile.Save(path, all);
            Console.WriteLine($"Deleted {removed} credential(s).");
            return 0;
        });
        return cmd;
    }

    [GeneratedRegex(@"^[A-Za-z0-9+=,.@_-]{1,64}$")]
    private static partial Regex UserName();
}
