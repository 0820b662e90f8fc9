"""template.yaml is read as SAM reads it: CloudFormation's short-form tags become their long forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fargate_sandbox.template_model import TemplateError, read_template

SHORT_FORMS = """\
Conditions:
  HasCluster: !Not [!Equals [!Ref ClusterName, ""]]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Condition: HasCluster
    Properties:
      Role: !GetAtt FnRole.Arn
      Description: !Sub "${AWS::StackName} ${ClusterName}"
      Layers: [!If [HasCluster, !Ref Layer, !Ref AWS::NoValue]]
      Tags: {Name: !Join ["-", [a, b]]}
"""


def test_each_short_form_becomes_its_long_form(tmp_path: Path) -> None:
    # Given a template written with the short forms
    path = tmp_path / "template.yaml"
    path.write_text(SHORT_FORMS)

    # When it is read
    template = read_template(path)

    # Then each is the intrinsic function CloudFormation receives
    assert template["Conditions"]["HasCluster"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ClusterName"}, ""]}]}
    assert template["Resources"]["Fn"]["Properties"] == {
        "Role": {"Fn::GetAtt": ["FnRole", "Arn"]},
        "Description": {"Fn::Sub": "${AWS::StackName} ${ClusterName}"},
        "Layers": [{"Fn::If": ["HasCluster", {"Ref": "Layer"}, {"Ref": "AWS::NoValue"}]}],
        "Tags": {"Name": {"Fn::Join": ["-", ["a", "b"]]}},
    }


def test_other_yaml_of_the_process_still_refuses_the_tags() -> None:
    # The Kubernetes emulator reads YAML bodies too: a tag there is an error, as it is for the API server
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("value: !Ref Thing")


def test_a_file_that_is_not_a_mapping_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(TemplateError, match=r"template\.yaml is not a template"):
        read_template(path)
