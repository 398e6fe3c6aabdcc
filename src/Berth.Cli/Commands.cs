using System.CommandLine;
using Berth.Agent;
using Berth.ControlPlane.Hosting;
using Berth.Core;
using Berth.LoadBalancer;
using Berth.Registry.Hosting;
using Berth.Logs.Hosting;
using Berth.Logs.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Berth.Cli;

/// <summary>The berth commands: up (everything in one process), server, agent.</summary>
internal static class Commands
{
    private static readonly Option<string> Listen = Env(new Option<string>("--listen")
    {
        Description = "Address and port to listen on (env BERTH_LISTEN).",
    }, "BERTH_LISTEN", "127.0.0.1:4566");

    private static readonly Option<string> AgentListen = Env(new Option<string>("--agent-listen")
    {
        Description = "Address and port of the agents' gRPC (HTTP/2) endpoint; default: the --listen port + 1 (env BERTH_AGENT_LISTEN).",
    }, "BERTH_AGENT_LISTEN", "");

    private static readonly Option<string> Data = Env(new Option<string>("--data")
    {
        Description = "Data directory (env BERTH_DATA).",
    }, "BERTH_DATA", ".berth");

    private static readonly Option<string> AccountId = Env(new Option<string>("--account-id")
    {
        Description = "Account id in every ARN (env BERTH_ACCOUNT_ID).",
    }, "BERTH_ACCOUNT_ID", BerthIdentity.DefaultAccountId);

    private static readonly Option<string> Region = Env(new Option<string>("--region")
    {
        Description = "Region in every ARN (env BERTH_REGION).",
    }, "BERTH_REGION", BerthIdentity.DefaultRegion);

    private static readonly Option<string> LogLevel = Env(new Option<string>("--log-level")
    {
        Description = "Trace, Debug, Information, Warning or Error (env BERTH_LOG_LEVEL).",
    }, "BERTH_LOG_LEVEL", "Information");

    private static readonly Option<string> Cluster = Env(new Option<string>("--cluster")
    {
        Description = "Cluster the agent registers in (env BERTH_CLUSTER).",
    }, "BERTH_CLUSTER", "default");

    private static readonly Option<int?> Cpu = new("--cpu") { Description = "CPU units to register (default: 1024 per core; 2048 per simulated instance; env BERTH_AGENT_CPU)." };
    private static readonly Option<long?> Memory = new("--memory") { Description = "Memory in MiB to register (default: the host's; 4096 per simulated instance; env BERTH_AGENT_MEMORY)." };

    private static readonly Option<string> InstanceType = Env(new Option<string>("--instance-type")
    {
        Description = "ecs.instance-type attribute (env BERTH_INSTANCE_TYPE).",
    }, "BERTH_INSTANCE_TYPE", "berth.local");

    private static readonly Option<string> Zone = Env(new Option<string>("--availability-zone")
    {
        Description = "ecs.availability-zone attribute (env BERTH_AVAILABILITY_ZONE).",
    }, "BERTH_AVAILABILITY_ZONE", "us-east-1a");

    private static readonly Option<string[]> Labels = new("--container-label")
    {
        Description = "KEY=VALUE label added to every container the agent creates (repeatable; env BERTH_CONTAINER_LABELS, comma-separated).",
        AllowMultipleArgumentsPerToken = false,
    };

    private static readonly Option<string> ServerUrl = Env(new Option<string>("--server")
    {
        Description = "Control plane URL the agent dials (env BERTH_SERVER).",
    }, "BERTH_SERVER", "");

    private static readonly Option<int> ResyncSeconds = new("--resync-interval")
    {
        Description = "Seconds between the agent's full re-reads of its Docker containers, a safety net for lost Docker events.",
        DefaultValueFactory = _ => 60,
    };

    private static readonly Option<int> Simulate = new("--simulate")
    {
        Description = "Register N simulated container instances (no Docker) that play task transitions with the --simulate-* delays; for load tests of the control plane.",
    };

    private static readonly Option<int> SimulatePullDelay = new("--simulate-pull-delay")
    {
        Description = "Simulated image pull time in ms.",
        DefaultValueFactory = _ => 50,
    };

    private static readonly Option<int> SimulateStartDelay = new("--simulate-start-delay")
    {
        Description = "Simulated container start time in ms, after the pull.",
        DefaultValueFactory = _ => 100,
    };

    private static readonly Option<int> SimulateStopDelay = new("--simulate-stop-delay")
    {
        Description = "Simulated container stop time in ms.",
        DefaultValueFactory = _ => 50,
    };

    private static readonly Option<string> SimulateInstanceTypes = new("--simulate-instance-types")
    {
        Description = "Comma-separated ecs.instance-type values spread over the simulated instances.",
        DefaultValueFactory = _ => "t3.medium,m5.large,c5.xlarge",
    };

    private static readonly Option<string> SimulateZones = new("--simulate-availability-zones")
    {
        Description = "Comma-separated ecs.availability-zone values given round robin to the simulated instances.",
        DefaultValueFactory = _ => "us-east-1a,us-east-1b,us-east-1c",
    };

    private static Option[] SimulateOptionsList => [Simulate, SimulatePullDelay, SimulateStartDelay, SimulateStopDelay, SimulateInstanceTypes, SimulateZones];

    private static readonly Option<string> RegistryHost = Env(new Option<string>("--registry-host")
    {
        Description = "Registry host:port as docker names images, used in repositoryUri (default localhost:PORT; env BERTH_REGISTRY_HOST).",
    }, "BERTH_REGISTRY_HOST", "");

    private static readonly Option<bool> RegistryAuth = new("--registry-auth")
    {
        Description = "Require 'docker login' with a token from 'aws ecr get-login-password' on /v2/ (env BERTH_REGISTRY_AUTH=true).",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("BERTH_REGISTRY_AUTH") is "1" or "true" or "TRUE" or "True",
    };

    private static readonly Option<int?> RegistrySweepSeconds = new("--registry-sweep-interval")
    {
        Description = "Seconds between registry maintenance runs: lifecycle policies, then garbage collection (default 300).",
    };

    private static readonly Option<int?> RegistryGcGraceSeconds = new("--registry-gc-grace")
    {
        Description = "Seconds an unreferenced blob is kept before garbage collection removes it (default 3600).",
    };

    private static readonly Option<string> LbBind = Env(new Option<string>("--lb-bind")
    {
        Description = "Address every load balancer listener port binds to (env BERTH_LB_BIND).",
    }, "BERTH_LB_BIND", "127.0.0.1");

    private static Option[] RegistryOptionsList => [RegistryHost, RegistryAuth, RegistrySweepSeconds, RegistryGcGraceSeconds, LbBind, TaskRetentionSeconds, RetentionSweepSeconds, AgentGraceSeconds, LogsSweepSeconds];

    private static readonly Option<int?> LogsSweepSeconds = new("--logs-retention-sweep-interval")
    {
        Description = "Seconds between sweeps that delete log events past their group's retention (default 300).",
    };

    private static readonly Option<int?> AgentGraceSeconds = new("--agent-grace")
    {
        Description = "Seconds an instance's agent may stay disconnected before its tasks are marked STOPPED so services replace them (default 60; env BERTH_AGENT_GRACE).",
    };

    private static readonly Option<int?> TaskRetentionSeconds = new("--task-retention")
    {
        Description = "Seconds a STOPPED task stays describable before it is removed (default 3600, ECS's minimum; env BERTH_TASK_RETENTION).",
    };

    private static readonly Option<int?> RetentionSweepSeconds = new("--retention-sweep-interval")
    {
        Description = "Seconds between sweeps that remove stopped tasks past the retention window.",
    };

    public static Command Up()
    {
        var cmd = new Command("up", "Run the control plane and one local agent in one process.");
        foreach (var o in (Option[])[Listen, AgentListen, Data, AccountId, Region, LogLevel, Cluster, Cpu, Memory, InstanceType, Zone, Labels, .. RegistryOptionsList])
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction((p, ct) => RunAsync(p, withServer: true, withAgent: true, ct));
        return cmd;
    }

    public static Command Server()
    {
        var cmd = new Command("server", "Run the control plane only; agents connect to it with 'berth agent --server URL'.");
        foreach (var o in (Option[])[Listen, AgentListen, Data, AccountId, Region, LogLevel, .. RegistryOptionsList])
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction((p, ct) => RunAsync(p, withServer: true, withAgent: false, ct));
        return cmd;
    }

    public static Command Agent()
    {
        var cmd = new Command("agent", "Run an agent that registers this host with a control plane and runs its tasks on Docker.");
        foreach (var o in (Option[])[ServerUrl, Data, LogLevel, Cluster, Cpu, Memory, InstanceType, Zone, Labels, ResyncSeconds, .. SimulateOptionsList])
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction((p, ct) => RunAsync(p, withServer: false, withAgent: true, ct));
        return cmd;
    }

    private static async Task<int> RunAsync(ParseResult p, bool withServer, bool withAgent, CancellationToken ct)
    {
        var data = Path.GetFullPath(p.GetValue(Data)!);
        Directory.CreateDirectory(data);
        // An agent alone listens on nothing; only the server options carry --listen.
        var listen = withServer ? p.GetValue(Listen)! : "127.0.0.1:0";
        if (!TryParseListen(listen, out var host, out var port))
        {
            await Console.Error.WriteLineAsync($"berth: --listen '{listen}' is not HOST:PORT (for example 127.0.0.1:4566).").ConfigureAwait(false);
            return 2;
        }
        var agentListen = withServer ? p.GetValue(AgentListen) : "";
        if (string.IsNullOrEmpty(agentListen))
        {
            agentListen = $"{host}:{(port == 0 ? 0 : port + 1)}";
        }
        if (!TryParseListen(agentListen, out var agentHost, out var agentPort))
        {
            await Console.Error.WriteLineAsync($"berth: --agent-listen '{agentListen}' is not HOST:PORT.").ConfigureAwait(false);
            return 2;
        }
        if (!Enum.TryParse<LogLevel>(p.GetValue(LogLevel), ignoreCase: true, out var level))
        {
            await Console.Error.WriteLineAsync($"berth: --log-level '{p.GetValue(LogLevel)}' is not one of Trace, Debug, Information, Warning, Error.").ConfigureAwait(false);
            return 2;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        builder.Logging.SetMinimumLevel(level);
        builder.Logging.AddFilter("Microsoft.AspNetCore", level > Microsoft.Extensions.Logging.LogLevel.Information ? level : Microsoft.Extensions.Logging.LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", level > Microsoft.Extensions.Logging.LogLevel.Information ? level : Microsoft.Extensions.Logging.LogLevel.Warning);
        // YARP logs every health probe at Information; Berth logs the target state changes itself.
        builder.Logging.AddFilter("Yarp", level > Microsoft.Extensions.Logging.LogLevel.Information ? level : Microsoft.Extensions.Logging.LogLevel.Warning);
        builder.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));

        var agentGrace = withServer ? p.GetValue(AgentGraceSeconds) ?? EnvInt("BERTH_AGENT_GRACE") ?? 60 : 60;
        if (agentGrace < 0)
        {
            await Console.Error.WriteLineAsync($"berth: --agent-grace takes a number of seconds >= 0, not {agentGrace}.").ConfigureAwait(false);
            return 2;
        }

        var endpoint = $"http://{(host is "0.0.0.0" or "*" or "::" ? "127.0.0.1" : host)}:{port}";
        if (withServer)
        {
            builder.WebHost.ConfigureKestrel(k =>
            {
                // HTTP/1.1 for the AWS clients and docker; the agents' gRPC streams need HTTP/2 with prior
                // knowledge, which Kestrel cannot offer on the same cleartext port, so they get their own.
                k.Listen(ToIp(host), port, l => l.Protocols = HttpProtocols.Http1);
                k.Listen(ToIp(agentHost), agentPort, l => l.Protocols = HttpProtocols.Http2);
                // Kestrel's own bound (30 MB) stays on: the AWS front doors refuse smaller bodies themselves, and
                // the registry lifts it only for blob uploads, which stream to disk; gRPC lifts it for its streams.
            });
            builder.Services.AddBerthControlPlane(new ControlPlaneOptions
            {
                DataDirectory = data,
                Identity = new BerthIdentity(p.GetValue(AccountId)!, p.GetValue(Region)!),
                PublicEndpoint = endpoint,
                AgentPort = agentPort,
                TaskRetention = TimeSpan.FromSeconds(Math.Max(0, p.GetValue(TaskRetentionSeconds) ?? EnvInt("BERTH_TASK_RETENTION") ?? 3600)),
                RetentionSweepInterval = TimeSpan.FromSeconds(Math.Max(1, p.GetValue(RetentionSweepSeconds) ?? 60)),
                AgentGrace = TimeSpan.FromSeconds(agentGrace),
            });
            var registryHost = p.GetValue(RegistryHost);
            var localHosts = new[] { $"localhost:{port}", $"127.0.0.1:{port}" };
            if (!System.Net.IPAddress.TryParse(p.GetValue(LbBind), out var lbBind))
            {
                await Console.Error.WriteLineAsync($"berth: --lb-bind '{p.GetValue(LbBind)}' is not an IP address.").ConfigureAwait(false);
                return 2;
            }
            builder.Services.AddSingleton<Berth.LoadBalancer.IInstanceAddressResolver, EcsInstanceAddresses>();
            builder.Services.AddSingleton<Berth.ControlPlane.Domain.IServiceTargets, EcsServiceTargets>();
            builder.Services.AddBerthLoadBalancer(new LoadBalancerOptions
            {
                BindAddress = lbBind,
                DefaultAvailabilityZone = p.GetValue(Zone) ?? (p.GetValue(Region) + "a"),
                ReservedPorts = new HashSet<int> { port, agentPort },
            });
            builder.Services.AddBerthRegistry(new RegistryOptions
            {
                DataDirectory = Path.Combine(data, "registry"),
                Host = string.IsNullOrEmpty(registryHost) ? localHosts[0] : registryHost,
                Aliases = localHosts,
                RequireAuth = p.GetValue(RegistryAuth),
                SweepInterval = TimeSpan.FromSeconds(Math.Max(1, p.GetValue(RegistrySweepSeconds) ?? 300)),
                GcGracePeriod = TimeSpan.FromSeconds(Math.Max(0, p.GetValue(RegistryGcGraceSeconds) ?? 3600)),
            });
            builder.Services.AddBerthLogs(new LogStoreOptions
            {
                DataDirectory = Path.Combine(data, "logs"),
                RetentionSweepInterval = TimeSpan.FromSeconds(Math.Max(1, p.GetValue(LogsSweepSeconds) ?? 300)),
            });
        }
        else
        {
            builder.WebHost.UseUrls(); // an agent listens on nothing
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        }

        if (withAgent)
        {
            var server = withServer ? endpoint : p.GetValue(ServerUrl);
            if (string.IsNullOrEmpty(server) || !Uri.TryCreate(server, UriKind.Absolute, out var serverUri))
            {
                await Console.Error.WriteLineAsync("berth: agent needs --server URL (or BERTH_SERVER), for example --server http://10.0.0.5:4566.").ConfigureAwait(false);
                return 2;
            }
            var simulate = withServer ? 0 : p.GetValue(Simulate);
            var resync = withServer ? 60 : p.GetValue(ResyncSeconds);
            if (resync <= 0)
            {
                await Console.Error.WriteLineAsync("berth: --resync-interval takes a number of seconds > 0.").ConfigureAwait(false);
                return 2;
            }
            if (simulate < 0 || p.GetValue(SimulatePullDelay) < 0 || p.GetValue(SimulateStartDelay) < 0 || p.GetValue(SimulateStopDelay) < 0)
            {
                await Console.Error.WriteLineAsync("berth: --simulate and the --simulate-*-delay options take a number >= 0.").ConfigureAwait(false);
                return 2;
            }
            if (simulate > 0)
            {
                static string[] List(string? csv) => (csv ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                var types = List(p.GetValue(SimulateInstanceTypes));
                var zones = List(p.GetValue(SimulateZones));
                if (types.Length == 0 || zones.Length == 0)
                {
                    await Console.Error.WriteLineAsync("berth: --simulate-instance-types and --simulate-availability-zones need at least one value.").ConfigureAwait(false);
                    return 2;
                }
                // Identities persist only when a data directory is asked for; otherwise each run registers new instances.
                var keepIdentities = p.GetResult(Data) is { Implicit: false } || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("BERTH_DATA"));
                builder.Services.AddBerthSimulatedFleet(new Berth.Agent.Simulation.SimulatedFleetOptions
                {
                    ServerUrl = serverUri,
                    Count = simulate,
                    Cluster = p.GetValue(Cluster)!,
                    CpuUnits = p.GetValue(Cpu) ?? EnvInt("BERTH_AGENT_CPU") ?? 2048,
                    MemoryMiB = p.GetValue(Memory) ?? EnvInt("BERTH_AGENT_MEMORY") ?? 4096,
                    InstanceTypes = types,
                    AvailabilityZones = zones,
                    PullDelay = TimeSpan.FromMilliseconds(p.GetValue(SimulatePullDelay)),
                    StartDelay = TimeSpan.FromMilliseconds(p.GetValue(SimulateStartDelay)),
                    StopDelay = TimeSpan.FromMilliseconds(p.GetValue(SimulateStopDelay)),
                    DataDirectory = keepIdentities ? data : null, // DATA/sim-N/agent.json
                });
            }
            else
            {
                builder.Services.AddBerthAgent(new AgentOptions
                {
                    ServerUrl = serverUri,
                    AgentEndpoint = withServer ? new Uri($"http://{(agentHost is "0.0.0.0" or "*" or "::" ? "127.0.0.1" : agentHost)}:{agentPort}") : null,
                    DataDirectory = Path.Combine(data, "agent"),
                    Cluster = p.GetValue(Cluster)!,
                    CpuUnits = p.GetValue(Cpu) ?? EnvInt("BERTH_AGENT_CPU"),
                    MemoryMiB = p.GetValue(Memory) ?? EnvInt("BERTH_AGENT_MEMORY"),
                    InstanceType = p.GetValue(InstanceType)!,
                    AvailabilityZone = p.GetValue(Zone)!,
                    ContainerLabels = ParseLabels(p.GetValue(Labels), Environment.GetEnvironmentVariable("BERTH_CONTAINER_LABELS")),
                    ResyncInterval = TimeSpan.FromSeconds(resync),
                });
            }
        }

        var app = builder.Build();
        if (withServer)
        {
            app.MapBerthControlPlane();
            app.MapBerthRegistry();
            app.MapBerthLoadBalancer();
        }
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            await Console.Error.WriteLineAsync($"berth: {e.Message} Stop whatever holds the port (ss -ltnp shows it) or choose another with --listen / --agent-listen.").ConfigureAwait(false);
            return 3;
        }
        if (withServer)
        {
            Console.WriteLine($"Berth is listening on {endpoint} (data: {data}).");
            Console.WriteLine($"Try: AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={p.GetValue(Region)} aws ecs list-clusters");
        }
        await app.WaitForShutdownAsync(ct).ConfigureAwait(false);
        return 0;
    }

    private static System.Net.IPAddress ToIp(string host)
        => host is "localhost" ? System.Net.IPAddress.Loopback : System.Net.IPAddress.Parse(host is "*" ? "0.0.0.0" : host);

    private static bool TryParseListen(string listen, out string host, out int port)
    {
        host = "";
        port = 0;
        var colon = listen.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(listen[(colon + 1)..], out port) || port is < 0 or > 65535)
        {
            return false;
        }
        host = listen[..colon].Trim('[', ']');
        return host is "localhost" or "*" || System.Net.IPAddress.TryParse(host, out _);
    }

    private static Dictionary<string, string> ParseLabels(string[]? args, string? env)
    {
        var all = (args ?? []).Concat((env ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in all)
        {
            var eq = kv.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                labels[kv[..eq]] = kv[(eq + 1)..];
            }
        }
        return labels;
    }

    private static int? EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) ? v : null;

    private static Option<T> Env<T>(Option<T> option, string variable, T fallback)
    {
        option.DefaultValueFactory = _ =>
        {
            var v = Environment.GetEnvironmentVariable(variable);
            return string.IsNullOrEmpty(v) ? fallback : (T)(object)v;
        };
        return option;
    }
}
