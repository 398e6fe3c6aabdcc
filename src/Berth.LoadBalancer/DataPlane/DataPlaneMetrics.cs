using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Berth.LoadBalancer.DataPlane;

/// <summary>
/// Per target group counters named after ALB's CloudWatch metrics, written in the Prometheus text format
/// at <c>GET /_berth/metrics</c>. Plain interlocked counters: no exporter package is needed for a dozen series.
/// </summary>
public sealed class DataPlaneMetrics
{
    /// <summary>Upper bounds (seconds) of the TargetResponseTime histogram buckets.</summary>
    internal static readonly double[] Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    private readonly ConcurrentDictionary<string, GroupCounters> _groups = new(StringComparer.Ordinal);

    internal sealed class GroupCounters
    {
        public long Requests;
        public long Target2xx;
        public long Target3xx;
        public long Target4xx;
        public long Target5xx;
        public long Elb5xx;
        public long ResponseTimeMicros;
        public readonly long[] BucketCounts = new long[Buckets.Length + 1];
    }

    internal GroupCounters For(string targetGroupName) => _groups.GetOrAdd(targetGroupName, _ => new GroupCounters());

    /// <summary>Records one forwarded request: the target's status, or an ELB-generated 5xx when the target did not answer.</summary>
    public void Record(string targetGroupName, int status, bool fromTarget, TimeSpan elapsed)
    {
        var c = For(targetGroupName);
        Interlocked.Increment(ref c.Requests);
        if (!fromTarget)
        {
            Interlocked.Increment(ref c.Elb5xx);
            return;
        }
        switch (status / 100)
        {
            case 2: Interlocked.Increment(ref c.Target2xx); break;
            case 3: Interlocked.Increment(ref c.Target3xx); break;
            case 4: Interlocked.Increment(ref c.Target4xx); break;
            case 5: Interlocked.Increment(ref c.Target5xx); break;
            default: break;
        }
        Interlocked.Add(ref c.ResponseTimeMicros, (long)(elapsed.TotalMilliseconds * 1000));
        var seconds = elapsed.TotalSeconds;
        var i = 0;
        while (i < Buckets.Length && seconds > Buckets[i])
        {
            i++;
        }
        Interlocked.Increment(ref c.BucketCounts[i]);
    }

    /// <summary>The Prometheus text exposition; <paramref name="hosts"/> gives (healthy, unhealthy) per group name.</summary>
    public string Render(IReadOnlyDictionary<string, (int Healthy, int Unhealthy)> hosts)
    {
        var sb = new StringBuilder();
        var names = _groups.Keys.Union(hosts.Keys).Order(StringComparer.Ordinal).ToList();
        void Series(string metric, string type, Func<string, double?> value)
        {
            sb.Append(CultureInfo.InvariantCulture, $"# TYPE berth_alb_{metric} {type}\n");
            foreach (var n in names)
            {
                if (value(n) is { } v)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"berth_alb_{metric}{{target_group=\"{n}\"}} {v}\n");
                }
            }
        }
        GroupCounters? G(string n) => _groups.GetValueOrDefault(n);
        Series("RequestCount", "counter", n => G(n)?.Requests ?? 0);
        Series("HTTPCode_Target_2XX_Count", "counter", n => G(n)?.Target2xx ?? 0);
        Series("HTTPCode_Target_3XX_Count", "counter", n => G(n)?.Target3xx ?? 0);
        Series("HTTPCode_Target_4XX_Count", "counter", n => G(n)?.Target4xx ?? 0);
        Series("HTTPCode_Target_5XX_Count", "counter", n => G(n)?.Target5xx ?? 0);
        Series("HTTPCode_ELB_5XX_Count", "counter", n => G(n)?.Elb5xx ?? 0);
        Series("HealthyHostCount", "gauge", n => hosts.TryGetValue(n, out var h) ? h.Healthy : 0);
        Series("UnHealthyHostCount", "gauge", n => hosts.TryGetValue(n, out var h) ? h.Unhealthy : 0);
        sb.Append("# TYPE berth_alb_TargetResponseTime histogram\n");
        foreach (var n in names)
        {
            if (G(n) is not { } c)
            {
                continue;
            }
            long cumulative = 0;
            for (var i = 0; i <= Buckets.Length; i++)
            {
                cumulative += Interlocked.Read(ref c.BucketCounts[i]);
                var le = i < Buckets.Length ? Buckets[i].ToString(CultureInfo.InvariantCulture) : "+Inf";
                sb.Append(CultureInfo.InvariantCulture, $"berth_alb_TargetResponseTime_bucket{{target_group=\"{n}\",le=\"{le}\"}} {cumulative}\n");
            }
            sb.Append(CultureInfo.InvariantCulture, $"berth_alb_TargetResponseTime_sum{{target_group=\"{n}\"}} {Interlocked.Read(ref c.ResponseTimeMicros) / 1e6}\n");
            sb.Append(CultureInfo.InvariantCulture, $"berth_alb_TargetResponseTime_count{{target_group=\"{n}\"}} {cumulative}\n");
        }
        return sb.ToString();
    }
}
