"""Runs one scenario of ecs_fidelity.json through boto3 and checks every step's answer (the step format: fidelity.py).

Usage: ecs_fidelity.py CASES.json SCENARIO, with BERTH_ENDPOINT (and BERTH_AGENT_PORT, saved as AGENT_PORT for
DiscoverPollEndpoint's answer) in the environment.
"""
import json, os, sys

import boto3
from botocore.config import Config

from fidelity import Runner

endpoint = os.environ["BERTH_ENDPOINT"]
Runner(boto3.client("ecs", endpoint_url=endpoint),
       boto3.client("ecs", endpoint_url=endpoint, config=Config(parameter_validation=False)),
       "ECS", {"AGENT_PORT": os.environ.get("BERTH_AGENT_PORT", "")}).run(json.load(open(sys.argv[1]))[sys.argv[2]]["steps"])
