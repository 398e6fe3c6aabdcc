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

    // berth agent's --region: no default of its own, the server's region is (an empty region in Register).
    private static readonly Option<string?> AgentRegion = Env(new Option<string?>("--region")
    {
        Description = "Region the agent's container instance registers into (default: the server's --region; env BERTH_AGENT_REGION).",
    }, "BERTH_AGENT_REGION", null);

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

    private static readonly Option<string> CapacityProvider = Env(new Option<string>("--capacity-provider")
    {
        Description = "The capacity provider this host's container instance belongs to (its ecs.capacity-provider attribute); tasks under a capacity provider strategy naming it are placed here (env BERTH_CAPACITY_PROVIDER).",
    }, "BERTH_CAPACITY_PROVIDER", "");

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

    private static readonly Option<string> TaskCleanupWait = Env(new Option<string>("--task-cleanup-wait")
    {
        Description = "How long a stopped task's containers are kept (docker logs works) before they and its volumes are removed: seconds, or 90s / 30m / 3h (default 3h, as ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION; env BERTH_TASK_CLEANUP_WAIT).",
    }, "BERTH_TASK_CLEANUP_WAIT", "3h");

    private static readonly Option<string> ImageCleanupInterval = Env(new Option<string>("--image-cleanup-interval")
    {
        Description = "Time between cleanups of unused images this agent pulled, as ECS_IMAGE_CLEANUP_INTERVAL; 0 disables image cleanup (default 30m; env BERTH_IMAGE_CLEANUP_INTERVAL).",
    }, "BERTH_IMAGE_CLEANUP_INTERVAL", "30m");

    private static readonly Option<string> ImageMinimumAge = Env(new Option<string>("--image-minimum-cleanup-age")
    {
        Description = "An image pulled less than this long ago is not cleaned up unless disk space is short, as ECS_IMAGE_MINIMUM_CLEANUP_AGE (default 1h; env BERTH_IMAGE_MINIMUM_CLEANUP_AGE).",
    }, "BERTH_IMAGE_MINIMUM_CLEANUP_AGE", "1h");

    private static readonly Option<int?> ImagesPerCycle = new("--images-deleted-per-cycle")
    {
        Description = "At most this many images removed per cleanup, as ECS_NUM_IMAGES_DELETE_PER_CYCLE (default 5; env BERTH_NUM_IMAGES_DELETE_PER_CYCLE).",
    };

    private static readonly Option<int?> MetadataPort = new("--metadata-port")
    {
        Description = "Port of the task metadata endpoint on the Docker bridge's gateway address (default: kept from the last run, else a free one; env BERTH_METADATA_PORT). 0 picks a free one; -1 turns the endpoint off.",
    };

    private static Option[] AgentRuntimeOptionsList => [TaskCleanupWait, ImageCleanupInterval, ImageMinimumAge, ImagesPerCycle, MetadataPort, .. HostPolicyOptionsList];

    // The host policy: what task definitions may take from this host. Nothing unless the operator allows it.
    private static readonly Option<string[]> AllowHostPath = new("--allow-host-path")
    {
        Description = "Allow bind mounts of host paths (volumes[].host.sourcePath) at or under this absolute path (repeatable; none by default; env BERTH_ALLOW_HOST_PATHS, comma-separated). Never the Docker socket without --allow-docker-socket.",
        AllowMultipleArgumentsPerToken = false,
    };

    private static readonly Option<bool> AllowDockerSocket = EnvFlag(new Option<bool>("--allow-docker-socket")
    {
        Description = "Allow a bind mount that exposes the Docker socket (/var/run/docker.sock, /run/docker.sock, DOCKER_HOST's), which is root on this host; it must also be under an --allow-host-path (env BERTH_ALLOW_DOCKER_SOCKET=true).",
    }, "BERTH_ALLOW_DOCKER_SOCKET");

    private static readonly Option<bool> AllowPrivileged = EnvFlag(new Option<bool>("--allow-privileged")
    {
        Description = "Allow privileged containers (the inverse of the ECS agent's ECS_DISABLE_PRIVILEGED; env BERTH_ALLOW_PRIVILEGED=true).",
    }, "BERTH_ALLOW_PRIVILEGED");

    private static readonly Option<string[]> AllowCapability = new("--allow-capability")
    {
        Description = "Allow this capability in linuxParameters.capabilities.add, e.g. NET_ADMIN, or ALL for any (repeatable; none by default; env BERTH_ALLOW_CAPABILITIES, comma-separated).",
        AllowMultipleArgumentsPerToken = false,
    };

    private static readonly Option<bool> AllowDevices = EnvFlag(new Option<bool>("--allow-devices")
    {
        Description = "Allow host devices (linuxParameters.devices) in containers (env BERTH_ALLOW_DEVICES=true).",
    }, "BERTH_ALLOW_DEVICES");

    private static readonly Option<bool> AllowHostPid = EnvFlag(new Option<bool>("--allow-host-pid")
    {
        Description = "Allow pidMode host: the container sees every process of this host (env BERTH_ALLOW_HOST_PID=true).",
    }, "BERTH_ALLOW_HOST_PID");

    private static readonly Option<bool> AllowHostIpc = EnvFlag(new Option<bool>("--allow-host-ipc")
    {
        Description = "Allow ipcMode host: the container shares this host's IPC namespace and /dev/shm (env BERTH_ALLOW_HOST_IPC=true).",
    }, "BERTH_ALLOW_HOST_IPC");

    private static readonly Option<bool> AllowUnconfined = EnvFlag(new Option<bool>("--allow-unconfined")
    {
        Description = "Allow dockerSecurityOptions that lift Docker's confinement: seccomp=unconfined or a task's own seccomp profile, apparmor=unconfined, label=disable or label=type:..., systempaths=unconfined, no-new-privileges=false, writable-cgroups (env BERTH_ALLOW_UNCONFINED=true).",
    }, "BERTH_ALLOW_UNCONFINED");

    private static Option[] HostPolicyOptionsList => [AllowHostPath, AllowDockerSocket, AllowPrivileged, AllowCapability, AllowDevices, AllowHostPid, AllowHostIpc, AllowUnconfined];

    private static Option<bool> EnvFlag(Option<bool> option, string variable)
    {
        option.DefaultValueFactory = _ => Environment.GetEnvironmentVariable(variable) is "1" or "true" or "TRUE" or "True";
        return option;
    }

    /// <summary>The agent's host policy from the --allow-* options and their BERTH_ALLOW_* variables; null (printed) when one is invalid.</summary>
    private static async Task<Berth.Core.Agent.HostPolicy?> HostPolicyOf(ParseResult p)
    {
        static IEnumerable<string> Csv(string? env) => (env ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (!Berth.Core.Agent.HostPolicy.TryCreate(
            (p.GetValue(AllowHostPath) ?? []).Concat(Csv(Environment.GetEnvironmentVariable("BERTH_ALLOW_HOST_PATHS"))),
            (p.GetValue(AllowCapability) ?? []).Concat(Csv(Environment.GetEnvironmentVariable("BERTH_ALLOW_CAPABILITIES"))),
            p.GetValue(AllowDockerSocket), p.GetValue(AllowPrivileged), p.GetValue(AllowDevices), p.GetValue(AllowHostPid), p.GetValue(AllowHostIpc),
            out var policy, out var error))
        {
            await Console.Error.WriteLineAsync($"berth: {error}.").ConfigureAwait(false);
            return null;
        }
        return policy with { Unconfined = p.GetValue(AllowUnconfined) };
    }

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

    private static readonly Option<int?> LbMaxConnections = new("--lb-max-connections")
    {
        Description = "Most client connections the load balancer's listeners hold at once, all ports together (default 50000); more wait in the accept queue.",
    };

    private static Option[] RegistryOptionsList => [RegistryHost, RegistryAuth, RegistrySweepSeconds, RegistryGcGraceSeconds, LbBind, LbMaxConnections, TaskRetentionSeconds, RetentionSweepSeconds, AgentGraceSeconds, LogsSweepSeconds, AuthModeOption, RegistryAnonymousPull];

    private static readonly Option<int?> LogsSweepSeconds = new("--logs-retention-sweep-interval")
    {
        Description = "Seconds between sweeps that delete log events past their group's retention (default 300).",
    };

    private static readonly Option<string> AuthModeOption = Env(new Option<string>("--auth")
    {
        Description = "none (accept any credentials) or sigv4 (verify AWS Signature Version 4 against DATA/credentials.json); default: none on a loopback --listen address, sigv4 otherwise (env BERTH_AUTH).",
    }, "BERTH_AUTH", "");

    private static readonly Option<bool> RegistryAnonymousPull = new("--registry-anonymous-pull")
    {
        Description = "With registry authentication on, let anyone pull (GET/HEAD under /v2/) without docker login; pushes and deletes still need a token.",
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

    private static readonly Option<bool> AgentTls = new("--agent-tls")
    {
        Description = "Serve the agent port with TLS even on loopback (it always does on any other address); agents then join with the token (env BERTH_AGENT_TLS=true).",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("BERTH_AGENT_TLS") is "1" or "true" or "TRUE" or "True",
    };

    private static readonly Option<string[]> TlsSan = new("--tls-san")
    {
        Description = "Extra host name or IP address agents use to reach this server, added to the agent port's certificate (repeatable).",
        AllowMultipleArgumentsPerToken = false,
    };

    private static readonly Option<string> JoinTokenOption = Env(new Option<string>("--join")
    {
        Description = "Join token printed by the server ('berth join-token'); needed only on the agent's first start, with --server https://HOST:PORT (env BERTH_JOIN_TOKEN).",
    }, "BERTH_JOIN_TOKEN", "");

    private static readonly Option<bool> Rotate = new("--rotate")
    {
        Description = "Replace the join secret: agents that joined keep working, the old token admits no new agent.",
    };

    public static Command JoinToken()
    {
        var cmd = new Command("join-token", "Print (or with --rotate, replace) the token agents join this server with; creates the agent CA in DATA/pki when there is none yet.");
        cmd.Options.Add(Data);
        cmd.Options.Add(Rotate);
        cmd.SetAction(p =>
        {
            var data = Path.GetFullPath(p.GetValue(Data)!);
            Directory.CreateDirectory(data);
            var pki = Berth.ControlPlane.Agents.AgentPki.LoadOrCreate(data);
            var token = p.GetValue(Rotate) ? pki.RotateJoinSecret() : pki.JoinToken;
            Console.WriteLine(token.ToString());
            return 0;
        });
        return cmd;
    }

    public static Command Up()
    {
        var cmd = new Command("up", "Run the control plane and one local agent in one process.");
        foreach (var o in (Option[])[Listen, AgentListen, Data, AccountId, Region, LogLevel, Cluster, Cpu, Memory, InstanceType, Zone, Labels, .. RegistryOptionsList, AgentTls, TlsSan, .. AgentRuntimeOptionsList, CapacityProvider, .. LimitOptions.All])
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction((p, ct) => RunAsync(p, withServer: true, withAgent: true, ct));
        return cmd;
    }

    public static Command Server()
    {
        var cmd = new Command("server", "Run the control plane only; agents connect to it with 'berth agent --server URL'.");
        foreach (var o in (Option[])[Listen, AgentListen, Data, AccountId, Region, LogLevel, .. RegistryOptionsList, AgentTls, TlsSan, .. LimitOptions.All])
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction((p, ct) => RunAsync(p, withServer: true, withAgent: false, ct));
        return cmd;
    }

    public static Command Agent()
    {
        var cmd = new Command("agent", "Run an agent that registers this host with a control plane and runs its tasks on Docker.");
        foreach (var o in (Option[])[ServerUrl, Data, LogLevel, Cluster, Cpu, Memory, InstanceType, Zone, Labels, ResyncSeconds, .. SimulateOptionsList, JoinTokenOption, .. AgentRuntimeOptionsList, CapacityProvider, AgentRegion])
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
        var authMode = Berth.Aws.Auth.AuthMode.None;
        if (withServer)
        {
            var credentials = new Berth.Aws.Auth.CredentialStore(Berth.Aws.Auth.CredentialFile.PathIn(data));
            (authMode, var authError) = Berth.Aws.Auth.AuthStartup.Decide(p.GetValue(AuthModeOption), host, credentials.Count, data);
            if (authError is not null)
            {
                await Console.Error.WriteLineAsync("berth: " + authError).ConfigureAwait(false);
                return 2;
            }
            builder.Services.AddSingleton(sp => new Berth.Aws.Auth.AwsAuthenticator(authMode, credentials, sp.GetRequiredService<TimeProvider>(), p.GetValue(AccountId)!,
                sp.GetService<Berth.Aws.Auth.TaskRoleCredentialIssuer>()));
        }
        var (limits, rates, limitError) = withServer ? LimitOptions.Read(p) : (new Berth.Aws.Hosting.ServerLimits(), null, null);
        if (limitError is not null)
        {
            await Console.Error.WriteLineAsync("berth: " + limitError).ConfigureAwait(false);
            return 2;
        }
        if (rates is not null)
        {
            builder.Services.AddSingleton(sp => new Berth.Aws.Auth.RequestRateLimiter(rates, sp.GetRequiredService<TimeProvider>()));
        }
        // The agent channel carries registry passwords and containers' environment: plaintext only on loopback.
        var agentTls = withServer && (p.GetValue(AgentTls) || !System.Net.IPAddress.IsLoopback(ToIp(agentHost)));
        Berth.ControlPlane.Agents.AgentPki? pki = null;
        System.Security.Cryptography.X509Certificates.X509Certificate2? serving = null;
        if (withServer)
        {
            pki = Berth.ControlPlane.Agents.AgentPki.LoadOrCreate(data);
            if (agentTls)
            {
                serving = pki.ServingCertificate(AgentPortNames(host, agentHost, p.GetValue(TlsSan)));
            }
            builder.Services.AddSingleton(pki);
            // The agent cannot take the CA from the handshake (TLS does not send a self-signed root): it fetches it
            // with AgentGateway.CaCertificate and checks it against the fingerprint in its join token.
            builder.WebHost.ConfigureKestrel(k =>
            {
                // HTTP/1.1 for the AWS clients and docker; the agents' gRPC streams need HTTP/2 with prior
                // knowledge, which Kestrel cannot offer on the same cleartext port, so they get their own.
                // Header, URL, slow-request and connection bounds on both ports (issue 12), the per-address cap first.
                limits.ApplyTo(k);
                var loggers = k.ApplicationServices.GetRequiredService<ILoggerFactory>();
                k.Listen(ToIp(host), port, l =>
                {
                    l.Protocols = HttpProtocols.Http1;
                    limits.Guard(l, loggers);
                });
                k.Listen(ToIp(agentHost), agentPort, l =>
                {
                    l.Protocols = HttpProtocols.Http2;
                    limits.Guard(l, loggers);
                    if (serving is not null)
                    {
                        l.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
                        {
                            ServerCertificate = serving,
                            SslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
                            // Allow, not require: an agent that has not joined yet has no certificate to show, and Join is
                            // the only call it can make; Connect refuses a stream without one (AgentGatewayService).
                            ClientCertificateMode = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate,
                            ClientCertificateValidation = (cert, _, _) => pki.ChainsToCa(cert),
                        });
                    }
                });
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
                AgentTls = agentTls,
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
                HealthFile = Path.Combine(data, "lb-health.json"),
                MaxConnections = p.GetValue(LbMaxConnections) is > 0 and var max ? max : 50_000,
            });
            builder.Services.AddBerthRegistry(new RegistryOptions
            {
                DataDirectory = Path.Combine(data, "registry"),
                Host = string.IsNullOrEmpty(registryHost) ? localHosts[0] : registryHost,
                Aliases = localHosts,
                RequireAuth = p.GetValue(RegistryAuth) || authMode == Berth.Aws.Auth.AuthMode.SigV4,
                AnonymousPull = p.GetValue(RegistryAnonymousPull),
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
            var agentTlsOptions = withServer
                ? agentTls ? new AgentTlsOptions { JoinToken = pki!.JoinToken.ToString() } : null
                : await AgentTlsFor(serverUri, Path.Combine(data, "agent"), p.GetValue(JoinTokenOption)).ConfigureAwait(false);
            if (agentTlsOptions is { JoinToken: "!" })
            {
                return 2; // AgentTlsFor said why
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
            if (simulate > 0 && agentTlsOptions is not null)
            {
                await Console.Error.WriteLineAsync("berth: --simulate dials the agent port in plaintext, so only a server on loopback without --agent-tls.").ConfigureAwait(false);
                return 2;
            }
            var capacityProvider = p.GetValue(CapacityProvider) is { Length: > 0 } cp ? cp : null;
            if (capacityProvider is not null && (capacityProvider.Length > 255 || !capacityProvider.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
            {
                await Console.Error.WriteLineAsync($"berth: --capacity-provider '{capacityProvider}' is not a capacity provider name (up to 255 letters, numbers, hyphens and underscores).").ConfigureAwait(false);
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
                    CapacityProvider = capacityProvider,
                });
            }
            else
            {
                var durations = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
                foreach (var (o, name) in new[] { (TaskCleanupWait, "--task-cleanup-wait"), (ImageCleanupInterval, "--image-cleanup-interval"), (ImageMinimumAge, "--image-minimum-cleanup-age") })
                {
                    if (!TryParseDuration(p.GetValue(o), out var d))
                    {
                        await Console.Error.WriteLineAsync($"berth: {name} takes seconds or a duration like 90s, 30m or 3h, not '{p.GetValue(o)}'.").ConfigureAwait(false);
                        return 2;
                    }
                    durations[name] = d;
                }
                var metadataPort = p.GetValue(MetadataPort) ?? EnvInt("BERTH_METADATA_PORT");
                if (metadataPort is < -1 or > 65535)
                {
                    await Console.Error.WriteLineAsync($"berth: --metadata-port takes a port (0 for a free one, -1 for none), not {metadataPort}.").ConfigureAwait(false);
                    return 2;
                }
                if (await HostPolicyOf(p).ConfigureAwait(false) is not { } hostPolicy)
                {
                    return 2;
                }
                var perCycle = p.GetValue(ImagesPerCycle) ?? EnvInt("BERTH_NUM_IMAGES_DELETE_PER_CYCLE") ?? 5;
                if (perCycle < 1)
                {
                    await Console.Error.WriteLineAsync($"berth: --images-deleted-per-cycle takes a number >= 1, not {perCycle}.").ConfigureAwait(false);
                    return 2;
                }
                builder.Services.AddBerthAgent(new AgentOptions
                {
                    TaskCleanupWait = durations["--task-cleanup-wait"],
                    ImageCleanup = durations["--image-cleanup-interval"] > TimeSpan.Zero,
                    ImageCleanupInterval = durations["--image-cleanup-interval"] > TimeSpan.Zero ? durations["--image-cleanup-interval"] : TimeSpan.FromMinutes(30),
                    ImageMinimumCleanupAge = durations["--image-minimum-cleanup-age"],
                    ImagesDeletedPerCycle = perCycle,
                    MetadataEndpoint = metadataPort != -1,
                    MetadataPort = metadataPort is >= 0 ? metadataPort : null,
                    ServerUrl = serverUri,
                    AgentEndpoint = withServer ? new Uri($"{(agentTls ? "https" : "http")}://{(agentHost is "0.0.0.0" or "*" or "::" ? "127.0.0.1" : agentHost)}:{agentPort}") : null,
                    DataDirectory = Path.Combine(data, "agent"),
                    Cluster = p.GetValue(Cluster)!,
                    CpuUnits = p.GetValue(Cpu) ?? EnvInt("BERTH_AGENT_CPU"),
                    MemoryMiB = p.GetValue(Memory) ?? EnvInt("BERTH_AGENT_MEMORY"),
                    InstanceType = p.GetValue(InstanceType)!,
                    AvailabilityZone = AgentZone(p, withServer),
                    ContainerLabels = ParseLabels(p.GetValue(Labels), Environment.GetEnvironmentVariable("BERTH_CONTAINER_LABELS")),
                    ResyncInterval = TimeSpan.FromSeconds(resync),
                    Tls = agentTlsOptions,
                    CapacityProvider = capacityProvider,
                    HostPolicy = hostPolicy,
                    Region = withServer ? null : p.GetValue(AgentRegion),
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
            if (authMode == Berth.Aws.Auth.AuthMode.SigV4)
            {
                Console.WriteLine($"Authentication: sigv4 (requests must be signed with a key from 'berth credentials create --data {data}'; the registry needs docker login).");
                Console.WriteLine($"Try: AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=<key id> AWS_SECRET_ACCESS_KEY=<secret> AWS_DEFAULT_REGION={p.GetValue(Region)} aws ecs list-clusters");
            }
            else
            {
                Console.WriteLine("Authentication: none (any credentials are accepted; start with --auth sigv4 to require signed requests).");
                Console.WriteLine($"Try: AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={p.GetValue(Region)} aws ecs list-clusters");
            }
            if (agentTls && !withAgent)
            {
                Console.WriteLine($"Agents connect with TLS on port {agentPort} (CA fingerprint sha256:{pki!.CaFingerprint}). To join a host, run on it:");
                Console.WriteLine($"  berth agent --server https://{JoinHost(host, agentHost)}:{port} --join {pki.JoinToken}");
                Console.WriteLine($"('berth join-token --data {data}' prints the token again, '--rotate' replaces it.)");
            }
            else if (!withAgent)
            {
                Console.WriteLine($"Agents on this host connect with: berth agent --server {endpoint} (plaintext on loopback; --agent-tls or a non-loopback --agent-listen turns TLS on).");
            }
        }
        await app.WaitForShutdownAsync(ct).ConfigureAwait(false);
        return Environment.ExitCode; // an agent that could not join sets it before it stops the host
    }

    /// <summary>
    /// How a lone agent secures its channel: https → TLS (joining with <paramref name="join"/> when it holds no
    /// certificate yet); http → plaintext, to a loopback server only. A <c>JoinToken</c> of "!" means refused (printed).
    /// </summary>
    private static async Task<AgentTlsOptions?> AgentTlsFor(Uri server, string agentData, string? join)
    {
        var refused = new AgentTlsOptions { JoinToken = "!" };
        if (server.Scheme == Uri.UriSchemeHttps)
        {
            if (!string.IsNullOrEmpty(join) && !Berth.Core.Agent.JoinToken.TryParse(join, out _, out var error))
            {
                await Console.Error.WriteLineAsync($"berth: --join: {error}.").ConfigureAwait(false);
                return refused;
            }
            if (string.IsNullOrEmpty(join) && !Berth.Agent.AgentTls.HasJoined(agentData))
            {
                await Console.Error.WriteLineAsync($"berth: this agent has not joined {server} yet: start it once with --join TOKEN (run 'berth join-token' on the server to print the token); its certificate is then kept in {Path.Combine(agentData, Berth.Agent.AgentTls.DirectoryName)}.").ConfigureAwait(false);
                return refused;
            }
            return new AgentTlsOptions { JoinToken = string.IsNullOrEmpty(join) ? null : join };
        }
        if (server.Scheme != Uri.UriSchemeHttp)
        {
            await Console.Error.WriteLineAsync($"berth: --server must be an http:// or https:// URL, not {server}.").ConfigureAwait(false);
            return refused;
        }
        if (!server.IsLoopback)
        {
            await Console.Error.WriteLineAsync($"berth: refusing to talk to {server.Host} in plaintext: the agent channel carries registry passwords and task environments, so off loopback it is TLS only. Use --server https://{server.Authority} --join TOKEN (the server prints the token; 'berth join-token' prints it again).").ConfigureAwait(false);
            return refused;
        }
        if (!string.IsNullOrEmpty(join))
        {
            await Console.Error.WriteLineAsync($"berth: --join needs --server https://{server.Authority} (a join is always over TLS).").ConfigureAwait(false);
            return refused;
        }
        return null;
    }

    /// <summary>The names the agent port's certificate carries: the listen addresses, or every local address when they are wildcards, the host name and --tls-san.</summary>
    private static IEnumerable<string> AgentPortNames(string host, string agentHost, string[]? extra)
    {
        var names = new List<string>(extra ?? []) { System.Net.Dns.GetHostName() };
        foreach (var h in new[] { host, agentHost })
        {
            if (h is "0.0.0.0" or "*" or "::")
            {
                names.AddRange(LocalAddresses());
            }
            else
            {
                names.Add(h);
            }
        }
        return names;
    }

    private static IEnumerable<string> LocalAddresses()
        => System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == System.Net.NetworkInformation.OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .Where(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork || (a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !a.IsIPv6LinkLocal))
            .Select(a => a.ToString());

    /// <summary>The address to print in the join command: the listen address, else this host's first non-loopback IPv4 address.</summary>
    private static string JoinHost(string host, string agentHost)
    {
        foreach (var h in new[] { agentHost, host })
        {
            if (h is not ("0.0.0.0" or "*" or "::"))
            {
                return h.Contains(':', StringComparison.Ordinal) ? $"[{h}]" : h;
            }
        }
        return LocalAddresses().FirstOrDefault(a => System.Net.IPAddress.TryParse(a, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && !System.Net.IPAddress.IsLoopback(ip))
            ?? System.Net.Dns.GetHostName();
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

    /// <summary>Seconds ("10800"), or a number with one unit as ECS's agent takes them ("90s", "30m", "3h", "500ms").</summary>
    internal static bool TryParseDuration(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        var t = (text ?? "").Trim();
        var units = new (string Suffix, double Seconds)[] { ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600) };
        foreach (var (suffix, seconds) in units)
        {
            if (t.EndsWith(suffix, StringComparison.Ordinal) && !(suffix == "s" && t.EndsWith("ms", StringComparison.Ordinal))
                && double.TryParse(t[..^suffix.Length], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= 0)
            {
                value = TimeSpan.FromSeconds(n * seconds);
                return true;
            }
        }
        if (double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var plain) && plain >= 0)
        {
            value = TimeSpan.FromSeconds(plain);
            return true;
        }
        return false;
    }

    private static int? EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) ? v : null;

    /// <summary>The agent's ecs.availability-zone: as given, else in its --region ("us-west-2a") when it names one.</summary>
    private static string AgentZone(ParseResult p, bool withServer)
    {
        var zone = p.GetValue(Zone)!;
        var given = p.GetResult(Zone) is { Implicit: false } || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("BERTH_AVAILABILITY_ZONE"));
        return !withServer && !given && p.GetValue(AgentRegion) is { Length: > 0 } region ? region + "a" : zone;
    }

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
