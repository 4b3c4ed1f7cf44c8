"""template.yaml read as plain data: CloudFormation's short-form tags
(!Ref, !Sub, ...) become their arguments. For the scripts that take a
resource's literal properties from the template (the table, the events
function's event source mapping), so the template stays their one
definition."""
import yaml


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags as plain values."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


CfnLoader.add_multi_constructor("!", _any_tag)


def load_template(path):
    with open(path) as f:
        return yaml.load(f, Loader=CfnLoader)
