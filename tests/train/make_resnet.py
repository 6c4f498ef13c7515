"""Writes a torchvision-layout ResNet state dict with torch.save, an input batch and the
network's pooled features (eval mode), for tests/train/test_model.cpp.

torchvision is not packaged in Debian, so the ResNet is written here with torchvision's
module names and structure (conv1 7x7/2, bn1, max-pool 3/2, layer<i> of BasicBlocks with
conv1/bn1/conv2/bn2 and downsample.0/1, fc). Usage: make_resnet.py OUT_DIR WIDTH DEPTH BLOCKS
"""
import sys

import numpy as np
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    def __init__(self, width, depth, blocks):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i in range(depth):
            cout = width << i
            layer = nn.Sequential(*[BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1)
                                    for j in range(blocks)])
            setattr(self, "layer%d" % (i + 1), layer)
            cin = cout
        self.depth = depth
        self.fc = nn.Linear(cin, 10)

    def features(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for i in range(self.depth):
            x = getattr(self, "layer%d" % (i + 1))(x)
        return x.mean((2, 3))


def main():
    out, width, depth, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    net = ResNet(width, depth, blocks)
    with torch.no_grad():  # statistics far from the defaults, so that they matter
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(100)
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = net.features(x)
    torch.save(net.state_dict(), out + "/resnet.pth")
    np.save(out + "/input.npy", x.numpy())
    np.save(out + "/features.npy", f.numpy())


if __name__ == "__main__":
    main()
