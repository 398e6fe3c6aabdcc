using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
using Berth.State;
using Berth.Core;
using static Berth.ControlPlane.Ecs.EcsApi;

namespace Berth.ControlPlane.Ecs;

/// <summary>
/// PutAccountSetting, PutAccountSettingDefault, ListAccountSettings, DeleteAccountSetting: stored and
/// echoed. Keys are "{principalArn or 'default'}/{name}"; a principal's own setting overrides the default.
/// </summary>
internal sealed class AccountSettingOperations(EcsState state, Arns arns)
{
    private const string DefaultPrincipal = "default";

    // What an account gets before anyone changes anything (ECS developer guide, "Account settings").
    private static readonly Dictionary<string, string> BuiltIn = new(StringComparer.Ordinal)
    {
        ["serviceLongArnFormat"] = "enabled",
        ["taskLongArnFormat"] = "enabled",
        ["containerInstanceLongArnFormat"] = "enabled",
        ["awsvpcTrunking"] = "disabled",
        ["containerInsights"] = "disabled",
        ["fargateFIPSMode"] = "disabled",
        ["tagResourceAuthorization"] = "on",
        ["fargateTaskRetirementWaitPeriod"] = "7",
        ["guardDutyActivate"] = "off",
        ["defaultLogDriverMode"] = "blocking",
    };

    private string Root => $"arn:aws:iam::{arns.Identity.AccountId}:root";

    public void Map(AwsJsonService s)
    {
        s.Map(EcsOperations.PutAccountSetting, Json.PutAccountSettingRequest, Json.PutAccountSettingResponse, async (r, ct) =>
            new PutAccountSettingResponse { Setting = await PutAsync(r.PrincipalArn ?? Root, r.Name!, r.Value!, ct).ConfigureAwait(false) });
        s.Map(EcsOperations.PutAccountSettingDefault, Json.PutAccountSettingDefaultRequest, Json.PutAccountSettingDefaultResponse, async (r, ct) =>
            new PutAccountSettingDefaultResponse { Setting = await PutAsync(DefaultPrincipal, r.Name!, r.Value!, ct).ConfigureAwait(false) });
        s.Map(EcsOperations.DeleteAccountSetting, Json.DeleteAccountSettingRequest, Json.DeleteAccountSettingResponse, DeleteAsync);
        s.Map(EcsOperations.ListAccountSettings, Json.ListAccountSettingsRequest, Json.ListAccountSettingsResponse, (r, _) => Task.FromResult(List(r)));
    }

    private async Task<Setting> PutAsync(string principal, string name, string value, CancellationToken ct)
    {
        if (value.Length == 0)
        {
            throw AwsException.InvalidParameter("value: must not be empty.");
        }
        var setting = new Setting { Name = name, Value = value, PrincipalArn = principal == DefaultPrincipal ? Root : principal, Type = "user" };
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        tx.Put(state.AccountSettings, $"{principal}/{name}", setting);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return setting;
    }

    private async Task<DeleteAccountSettingResponse> DeleteAsync(DeleteAccountSettingRequest req, CancellationToken ct)
    {
        var id = $"{req.PrincipalArn ?? Root}/{req.Name}";
        await using var tx = await state.BeginAsync(ct).ConfigureAwait(false);
        var existing = state.AccountSettings.Find(id)
            ?? throw AwsException.InvalidParameter($"name: no account setting '{req.Name}' is set for {req.PrincipalArn ?? Root}.");
        tx.Delete(state.AccountSettings, id);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return new DeleteAccountSettingResponse { Setting = existing };
    }

    private ListAccountSettingsResponse List(ListAccountSettingsRequest req)
    {
        if (req.Value is not null && req.Name is null)
        {
            throw AwsException.InvalidParameter("value: can only be used together with name.");
        }
        var principal = req.PrincipalArn ?? Root;
        var settings = new Dictionary<string, Setting>(StringComparer.Ordinal);
        if (req.EffectiveSettings == true)
        {
            // Built-in value, overridden by the account default, overridden by the principal's own.
            foreach (var (name, value) in BuiltIn)
            {
                settings[name] = new Setting { Name = name, Value = value, PrincipalArn = principal, Type = "aws_managed" };
            }
            foreach (var d in state.AccountSettings.All.Where(v => v.Id.StartsWith(DefaultPrincipal + "/", StringComparison.Ordinal)))
            {
                settings[d.Value.Name!] = d.Value;
            }
        }
        foreach (var own in state.AccountSettings.All.Where(v => v.Id.StartsWith(principal + "/", StringComparison.Ordinal)))
        {
            settings[own.Value.Name!] = own.Value;
        }
        var matching = settings.Values
            .Where(x => (req.Name is null || x.Name == req.Name) && (req.Value is null || x.Value == req.Value))
            .ToDictionary(x => x.Name!, StringComparer.Ordinal);
        var (page, next) = Pagination.Page(matching.Keys, req.MaxResults, req.NextToken, limit: 10);
        return new ListAccountSettingsResponse { Settings = page.Select(k => matching[k]).ToList(), NextToken = next };
    }
}
