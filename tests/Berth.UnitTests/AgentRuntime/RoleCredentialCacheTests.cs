using Berth.Agent.Metadata;
using Berth.Core.Agent;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.AgentRuntime;

/// <summary>The agent's task role credentials: refreshed once half their lifetime is gone, asked for at most every 10 s, never served expired.</summary>
public sealed class RoleCredentialCacheTests
{
    private const string Task = "arn:aws:ecs:us-east-1:000000000000:task/default/abc";
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 2, 0, 0, TimeSpan.Zero);

    private static RoleCredentials Issued(DateTimeOffset now, string key = "ASIAAAAAAAAAAAAAAAAA")
        => new() { TaskArn = Task, RoleArn = "r", AccessKeyId = key, SecretAccessKey = "s", SessionToken = "t", ExpirationMs = (now + TimeSpan.FromHours(6)).ToUnixTimeMilliseconds() };

    [Fact]
    public void RefreshDue_AsksOnlyAfterHalfTheLifetime_AndNotAgainWithinTenSeconds()
    {
        var time = new FakeTimeProvider(Start);
        var cache = new RoleCredentialCache(time);
        var sent = new List<RoleCredentialsRequest>();
        cache.Attach(m =>
        {
            sent.Add(m.RoleCredentialsRequest);
            return true;
        });
        cache.Put(Issued(Start));

        time.Advance(TimeSpan.FromHours(3) - TimeSpan.FromSeconds(1));
        cache.RefreshDue();
        Assert.Empty(sent);
        time.Advance(TimeSpan.FromSeconds(1));
        cache.RefreshDue();
        Assert.Equal([Task], Assert.Single(sent).TaskArns);
        time.Advance(TimeSpan.FromSeconds(5));
        cache.RefreshDue();
        Assert.Single(sent);
        time.Advance(TimeSpan.FromSeconds(5));
        cache.RefreshDue();
        Assert.Equal(2, sent.Count);

        // The answer arrives: nothing due until half of the new lifetime is gone.
        cache.Put(Issued(time.GetUtcNow(), "ASIABBBBBBBBBBBBBBBB"));
        Assert.Equal("ASIABBBBBBBBBBBBBBBB", cache.Get(Task)!.AccessKeyId);
        time.Advance(TimeSpan.FromHours(1));
        cache.RefreshDue();
        Assert.Equal(2, sent.Count);
    }

    [Fact]
    public void Get_ExpiredCredentials_Null_AndAnOlderIssueNeverReplacesANewerOne()
    {
        var time = new FakeTimeProvider(Start);
        var cache = new RoleCredentialCache(time);
        var newer = Issued(Start + TimeSpan.FromMinutes(1), "ASIANEWERNEWERNEWERN");
        cache.Put(newer);
        cache.Put(Issued(Start));
        Assert.Equal(newer.AccessKeyId, cache.Get(Task)!.AccessKeyId);
        time.Advance(TimeSpan.FromHours(6) + TimeSpan.FromMinutes(1));
        Assert.Null(cache.Get(Task));
    }

    [Fact]
    public async Task GetAsync_NoneHeld_AsksAndReturnsWhatArrives()
    {
        var time = new FakeTimeProvider(Start);
        var cache = new RoleCredentialCache(time);
        RoleCredentialsRequest? asked = null;
        cache.Attach(m =>
        {
            asked = m.RoleCredentialsRequest;
            return true;
        });
        var pending = cache.GetAsync(Task, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Equal([Task], asked!.TaskArns);
        Assert.False(pending.IsCompleted);
        cache.Put(Issued(Start));
        var got = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Task, got!.TaskArn);
    }

    [Fact]
    public async Task GetAsync_NothingArrives_NullAfterTheWait()
    {
        var time = new FakeTimeProvider(Start);
        var cache = new RoleCredentialCache(time);
        var pending = cache.GetAsync(Task, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.False(pending.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Null(await pending.WaitAsync(TimeSpan.FromSeconds(10)));
    }
}
