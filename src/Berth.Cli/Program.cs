using System.CommandLine;
using Berth.Cli;

var root = new RootCommand("Berth: a self-hosted container orchestrator that speaks the Amazon ECS API.");
root.Subcommands.Add(Commands.Up());
root.Subcommands.Add(Commands.Server());
root.Subcommands.Add(Commands.Agent());
root.Subcommands.Add(Commands.JoinToken());
root.Subcommands.Add(CredentialCommands.Build());
root.Subcommands.Add(LogsCommand.Create());
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
