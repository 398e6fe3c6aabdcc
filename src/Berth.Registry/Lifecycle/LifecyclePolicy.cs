using System.Globalization;
using System.Text.Json;

namespace Berth.Registry.Lifecycle;

/// <summary>A lifecycle policy text ECR would refuse; the message names the offending part ("rules[1].selection.countUnit: ...").</summary>
public sealed class LifecyclePolicyException(string message) : Exception(message);

/// <summary>One rule of a lifecycle policy (ECR's rule language; only the "expire" action).</summary>
public sealed record LifecycleRule(
    int Priority,
    string? Description,
    string TagStatus,
    IReadOnlyList<string> TagPrefixes,
    IReadOnlyList<string> TagPatterns,
    string CountType,
    int CountNumber)
{
    public const string Tagged = "tagged";
    public const string Untagged = "untagged";
    public const string Any = "any";
    public const string ImageCountMoreThan = "imageCountMoreThan";
    public const string SinceImagePushed = "sinceImagePushed";

    /// <summary>
    /// Whether the image meets the rule's tagging requirements: tagged images carrying, for every prefix
    /// (or wildcard pattern) of the rule, at least one tag that matches it; untagged images; or any image.
    /// </summary>
    public bool Selects(IReadOnlyList<string> tags) => TagStatus switch
    {
        Untagged => tags.Count == 0,
        Tagged => tags.Count > 0
            && TagPrefixes.All(p => tags.Any(t => t.StartsWith(p, StringComparison.Ordinal)))
            && TagPatterns.All(p => tags.Any(t => Glob.IsMatch(p, t))),
        _ => true,
    };
}

/// <summary>
/// A parsed and validated lifecycle policy. <see cref="Parse"/> applies the checks ECR documents for
/// lifecycle policies (required properties and their types, enums, countUnit only with sinceImagePushed,
/// positive countNumber, tagPrefixList/tagPatternList only — and one of them required — with "tagged",
/// at most four wildcards per pattern, unique rule priorities, the "any" rule last, one untagged rule,
/// no two rules with the same tag prefixes or patterns). Archive storage (the "transition" action,
/// sinceImagePulled, sinceImageTransitioned, storageClass "archive") is refused as unsupported.
/// </summary>
public sealed class LifecyclePolicy
{
    public const int MaxWildcards = 4;

    private LifecyclePolicy(List<LifecycleRule> rules) => Rules = rules;

    /// <summary>The rules in evaluation order (lowest rulePriority first).</summary>
    public IReadOnlyList<LifecycleRule> Rules { get; }

    public static bool TryParse(string text, out LifecyclePolicy? policy)
    {
        try
        {
            policy = Parse(text);
            return true;
        }
        catch (LifecyclePolicyException)
        {
            policy = null;
            return false;
        }
    }

    /// <exception cref="LifecyclePolicyException">the text is not a valid lifecycle policy</exception>
    public static LifecyclePolicy Parse(string text)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new LifecyclePolicyException("Could not map policyString into LifecyclePolicy: the text is not valid JSON (" + e.Message + ").");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new LifecyclePolicyException("Could not map policyString into LifecyclePolicy: the policy must be a JSON object with a 'rules' array.");
            }
            Properties(root, "", required: ["rules"], optional: []);
            var rulesElement = root.GetProperty("rules");
            if (rulesElement.ValueKind != JsonValueKind.Array)
            {
                throw new LifecyclePolicyException("rules: must be an array of rules.");
            }
            if (rulesElement.GetArrayLength() == 0)
            {
                throw new LifecyclePolicyException("rules: the policy needs at least one rule.");
            }
            var rules = new List<LifecycleRule>();
            var i = 0;
            foreach (var r in rulesElement.EnumerateArray())
            {
                rules.Add(ReadRule(r, $"rules[{i++}]"));
            }
            CheckAcrossRules(rules);
            rules.Sort((a, b) => a.Priority.CompareTo(b.Priority));
            return new LifecyclePolicy(rules);
        }
    }

    private static LifecycleRule ReadRule(JsonElement rule, string path)
    {
        if (rule.ValueKind != JsonValueKind.Object)
        {
            throw new LifecyclePolicyException($"{path}: must be an object with rulePriority, selection and action.");
        }
        Properties(rule, path, required: ["rulePriority", "selection", "action"], optional: ["description"]);
        var priority = PositiveInt(rule.GetProperty("rulePriority"), path + ".rulePriority");
        string? description = null;
        if (rule.TryGetProperty("description", out var d))
        {
            description = d.ValueKind == JsonValueKind.String ? d.GetString() : throw new LifecyclePolicyException($"{path}.description: must be a string.");
        }

        var action = rule.GetProperty("action");
        var actionPath = path + ".action";
        if (action.ValueKind != JsonValueKind.Object)
        {
            throw new LifecyclePolicyException($"{actionPath}: must be an object like {{\"type\": \"expire\"}}.");
        }
        Properties(action, actionPath, required: ["type"], optional: ["targetStorageClass"]);
        var type = Text(action.GetProperty("type"), actionPath + ".type");
        if (type == "transition" || action.TryGetProperty("targetStorageClass", out _))
        {
            throw new LifecyclePolicyException($"{actionPath}: the transition action (archive storage) is not supported by Berth; use \"expire\".");
        }
        if (type != "expire")
        {
            throw new LifecyclePolicyException($"{actionPath}.type: '{type}' is not a valid action; the supported value is \"expire\".");
        }

        var selection = rule.GetProperty("selection");
        var sel = path + ".selection";
        if (selection.ValueKind != JsonValueKind.Object)
        {
            throw new LifecyclePolicyException($"{sel}: must be an object with tagStatus, countType and countNumber.");
        }
        Properties(selection, sel, required: ["tagStatus", "countType", "countNumber"], optional: ["tagPrefixList", "tagPatternList", "countUnit", "storageClass"]);
        var tagStatus = Text(selection.GetProperty("tagStatus"), sel + ".tagStatus");
        if (tagStatus is not (LifecycleRule.Tagged or LifecycleRule.Untagged or LifecycleRule.Any))
        {
            throw new LifecyclePolicyException($"{sel}.tagStatus: '{tagStatus}' is not one of tagged, untagged, any.");
        }
        if (selection.TryGetProperty("storageClass", out var sc) && Text(sc, sel + ".storageClass") != "standard")
        {
            throw new LifecyclePolicyException($"{sel}.storageClass: only \"standard\" is supported by Berth (no archive storage).");
        }
        var prefixes = StringList(selection, "tagPrefixList", sel);
        var patterns = StringList(selection, "tagPatternList", sel);
        if (tagStatus != LifecycleRule.Tagged && (prefixes is not null || patterns is not null))
        {
            throw new LifecyclePolicyException($"{sel}: tagPrefixList and tagPatternList may only be used with tagStatus \"tagged\" (this rule has \"{tagStatus}\").");
        }
        if (prefixes is not null && patterns is not null)
        {
            throw new LifecyclePolicyException($"{sel}: specify either tagPrefixList or tagPatternList, not both.");
        }
        if (tagStatus == LifecycleRule.Tagged && prefixes is null && patterns is null)
        {
            throw new LifecyclePolicyException($"{sel}: tagStatus \"tagged\" requires a tagPrefixList or a tagPatternList.");
        }
        for (var p = 0; p < (patterns?.Count ?? 0); p++)
        {
            if (patterns![p].Count(c => c == '*') > MaxWildcards)
            {
                throw new LifecyclePolicyException($"{sel}.tagPatternList[{p}]: '{patterns[p]}' has more than {MaxWildcards} wildcards (*).");
            }
        }

        var countType = Text(selection.GetProperty("countType"), sel + ".countType");
        if (countType is "sinceImagePulled" or "sinceImageTransitioned")
        {
            throw new LifecyclePolicyException($"{sel}.countType: '{countType}' belongs to archive storage transitions, which Berth does not support; use imageCountMoreThan or sinceImagePushed.");
        }
        if (countType is not (LifecycleRule.ImageCountMoreThan or LifecycleRule.SinceImagePushed))
        {
            throw new LifecyclePolicyException($"{sel}.countType: '{countType}' is not one of imageCountMoreThan, sinceImagePushed.");
        }
        var hasUnit = selection.TryGetProperty("countUnit", out var unit);
        if (countType == LifecycleRule.SinceImagePushed)
        {
            if (!hasUnit)
            {
                throw new LifecyclePolicyException($"{sel}.countUnit: required with countType sinceImagePushed (\"days\").");
            }
            if (Text(unit, sel + ".countUnit") != "days")
            {
                throw new LifecyclePolicyException($"{sel}.countUnit: '{unit}' is not valid; the only unit is \"days\".");
            }
        }
        else if (hasUnit)
        {
            throw new LifecyclePolicyException($"{sel}.countUnit: only allowed with countType sinceImagePushed, not with {countType}.");
        }
        var countNumber = PositiveInt(selection.GetProperty("countNumber"), sel + ".countNumber");
        return new LifecycleRule(priority, description, tagStatus, prefixes ?? [], patterns ?? [], countType, countNumber);
    }

    private static void CheckAcrossRules(List<LifecycleRule> rules)
    {
        var duplicate = rules.GroupBy(r => r.Priority).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new LifecyclePolicyException($"rules: rulePriority {duplicate.Key} is used by more than one rule; priorities must be unique.");
        }
        var highest = rules.Max(r => r.Priority);
        if (rules.FirstOrDefault(r => r.TagStatus == LifecycleRule.Any && r.Priority != highest) is { } any)
        {
            throw new LifecyclePolicyException($"rules: the rule with tagStatus \"any\" (rulePriority {any.Priority}) must have the highest rulePriority and be evaluated last.");
        }
        if (rules.Count(r => r.TagStatus == LifecycleRule.Untagged) > 1)
        {
            throw new LifecyclePolicyException("rules: only one rule may select untagged images.");
        }
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in rules.Where(r => r.TagStatus == LifecycleRule.Tagged))
        {
            var key = (r.TagPrefixes.Count > 0 ? "prefix:" : "pattern:")
                + string.Join('\n', (r.TagPrefixes.Count > 0 ? r.TagPrefixes : r.TagPatterns).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));
            if (seen.TryGetValue(key, out var other))
            {
                throw new LifecyclePolicyException($"rules: rulePriority {other} and {r.Priority} select the same tags; each rule needs a unique set of tag prefixes or patterns.");
            }
            seen[key] = r.Priority;
        }
    }

    private static void Properties(JsonElement obj, string path, string[] required, string[] optional)
    {
        foreach (var p in obj.EnumerateObject())
        {
            if (Array.IndexOf(required, p.Name) < 0 && Array.IndexOf(optional, p.Name) < 0)
            {
                throw new LifecyclePolicyException($"{Join(path, p.Name)}: unknown property; allowed here: {string.Join(", ", required.Concat(optional))}.");
            }
        }
        foreach (var r in required)
        {
            if (!obj.TryGetProperty(r, out _))
            {
                throw new LifecyclePolicyException($"{Join(path, r)}: missing required property.");
            }
        }
    }

    private static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;

    private static string Text(JsonElement e, string path)
        => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw new LifecyclePolicyException($"{path}: must be a string.");

    private static int PositiveInt(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out var n))
        {
            throw new LifecyclePolicyException($"{path}: must be an integer, got {Describe(e)}.");
        }
        return n >= 1 ? n : throw new LifecyclePolicyException($"{path}: must be a positive integer (at least 1), got {n}.");
    }

    private static List<string>? StringList(JsonElement selection, string name, string path)
    {
        if (!selection.TryGetProperty(name, out var list))
        {
            return null;
        }
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            throw new LifecyclePolicyException($"{path}.{name}: must be a non-empty list of strings.");
        }
        var result = new List<string>();
        var i = 0;
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String || item.GetString()!.Length == 0)
            {
                throw new LifecyclePolicyException($"{path}.{name}[{i}]: must be a non-empty string.");
            }
            result.Add(item.GetString()!);
            i++;
        }
        return result;
    }

    private static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => "the string \"" + e.GetString() + "\"",
        JsonValueKind.Number => e.GetRawText(),
        _ => e.ValueKind.ToString().ToLower(CultureInfo.InvariantCulture),
    };
}

/// <summary>ECR's tag wildcards: '*' matches any run of characters (including none); everything else literally.</summary>
public static class Glob
{
    public static bool IsMatch(string pattern, string value)
    {
        int p = 0, v = 0, star = -1, mark = 0;
        while (v < value.Length)
        {
            if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = v;
            }
            else if (p < pattern.Length && pattern[p] == value[v])
            {
                p++;
                v++;
            }
            else if (star >= 0)
            {
                p = star + 1;
                v = ++mark;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }
        return p == pattern.Length;
    }
}
